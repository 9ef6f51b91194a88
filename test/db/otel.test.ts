import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';
import { planDir, seedUsers, splitPlanYaml, USERS_TABLE } from '../helpers/fixtures.js';

/**
 * OpenTelemetry through the built binary: a tiny OTLP/HTTP receiver started
 * here gets a span per command, phase and step (each a child of the one
 * above) and the backfill's, lock waits' and gate's metrics; without
 * OTEL_EXPORTER_OTLP_ENDPOINT, no OpenTelemetry module is loaded at all (a
 * module resolve hook in the CLI's process lists what it imports).
 */

const PLAN = 'split-users-full-name';
const ROWS = 2_000;

interface OtlpSpan {
  name: string;
  spanId: string;
  parentSpanId?: string;
  attributes: { key: string; value: { stringValue?: string } }[];
}
interface OtlpPoint {
  asInt?: string | number;
  asDouble?: number;
  count?: string | number;
  attributes: { key: string; value: { stringValue?: string; intValue?: string | number } }[];
}
interface OtlpMetric {
  name: string;
  sum?: { dataPoints: OtlpPoint[] };
  gauge?: { dataPoints: OtlpPoint[] };
  histogram?: { dataPoints: OtlpPoint[] };
}

let db: TestDatabase;
let dir: string;
let work: string;
let receiver: Server;
let endpoint: string;
const received = { traces: [] as unknown[], metrics: [] as unknown[], contentTypes: new Set<string>() };

const spans = (): OtlpSpan[] =>
  (received.traces as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }[]).flatMap((t) =>
    t.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)),
  );
const metrics = (): OtlpMetric[] =>
  (received.metrics as { resourceMetrics: { scopeMetrics: { metrics: OtlpMetric[] }[] }[] }[]).flatMap((m) =>
    m.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics)),
  );
const points = (name: string): OtlpPoint[] =>
  metrics()
    .filter((m) => m.name === name)
    .flatMap((m) => (m.sum ?? m.gauge ?? m.histogram)!.dataPoints);
const value = (p: OtlpPoint): number => Number(p.asInt ?? p.asDouble ?? NaN);
const attr = (s: OtlpSpan, key: string): string | undefined => s.attributes.find((a) => a.key === key)?.value.stringValue;

/** A preload for the CLI's process: a resolve hook that appends every module specifier it imports to `file`. */
async function importLog(file: string): Promise<string> {
  const hook = path.join(work, 'resolve-hook.mjs');
  await writeFile(
    hook,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  appendFileSync(${JSON.stringify(file)}, specifier + '\\n');
  return next(specifier, context);
}
`,
  );
  const preload = path.join(work, 'preload.mjs');
  await writeFile(preload, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hook).href)});\n`);
  return `--import=${pathToFileURL(preload).href}`;
}

beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(USERS_TABLE);
  await db.sql(seedUsers(ROWS));
  await db.sql('ANALYZE users');
  work = await mkdtemp(path.join(os.tmpdir(), 'pgshift-otel-'));
  dir = await planDir({
    [`${PLAN}.yaml`]: splitPlanYaml(
      PLAN,
      'public.users',
      '{ batch_size: 200, target_batch_ms: 0, pause: 0ms }',
      '{ lock_timeout: 500ms, statement_timeout: 10s, retries: 1, old_code_quiet: 1h }',
    ),
  });
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.contentTypes.add(String(req.headers['content-type']));
      const body = JSON.parse(Buffer.concat(chunks).toString()) as unknown;
      if (req.url === '/v1/traces') received.traces.push(body);
      if (req.url === '/v1/metrics') received.metrics.push(body);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => receiver.close(() => resolve())));

describe('OpenTelemetry', () => {
  it('loads no OpenTelemetry module and sends nothing when no OTLP endpoint is set', async () => {
    const file = path.join(work, 'imports-off.txt');
    const env = {
      NODE_OPTIONS: await importLog(file),
      OTEL_EXPORTER_OTLP_ENDPOINT: '',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: '',
    };
    const result = await runCli(['plan', 'apply', '--phase', 'expand', '--dir', dir, '--database-url', db.url], env);
    expect(result.code).toBe(0);
    const imported = await readFile(file, 'utf8');
    // The hook did see the CLI's own imports, so an absence below means something.
    expect(imported).toContain('commander');
    expect(imported).not.toContain('@opentelemetry');
    expect(received.traces).toEqual([]);
    expect(received.metrics).toEqual([]);
    expect((await runCli(['plan', 'rollback', PLAN, '--dir', dir, '--database-url', db.url], env)).code).toBe(0);
  });

  it('sends a span per command, phase and step, and the backfill, lock-wait and gate metrics', async () => {
    const file = path.join(work, 'imports-on.txt');
    const env = { NODE_OPTIONS: await importLog(file), OTEL_EXPORTER_OTLP_ENDPOINT: endpoint, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' };
    const args = ['--dir', dir, '--database-url', db.url];
    expect((await runCli(['plan', 'apply', '--phase', 'switch-read', ...args], env)).code).toBe(0);
    expect(await readFile(file, 'utf8')).toContain('@opentelemetry/sdk-trace-node');
    expect([...received.contentTypes]).toEqual(['application/json']);

    const all = spans();
    const command = all.find((s) => s.name === 'migrate plan apply');
    expect(command).toBeDefined();
    expect(command!.parentSpanId || undefined).toBeUndefined();
    const phases = all.filter((s) => s.name.startsWith('pgshift phase '));
    expect(phases.map((s) => s.name)).toEqual(['pgshift phase expand', 'pgshift phase dual-write', 'pgshift phase backfill', 'pgshift phase switch-read']);
    for (const p of phases) {
      expect(p.parentSpanId).toBe(command!.spanId);
      expect(attr(p, 'pgshift.plan')).toBe(PLAN);
      expect(attr(p, 'pgshift.table')).toBe('public.users');
      expect(attr(p, 'pgshift.action')).toBe('apply');
    }
    const steps = all.filter((s) => s.name.startsWith('pgshift step '));
    const backfillPhase = phases.find((p) => p.name === 'pgshift phase backfill')!;
    expect(steps.find((s) => s.name === 'pgshift step backfill')?.parentSpanId).toBe(backfillPhase.spanId);
    const expandStep = steps.find((s) => s.name === 'pgshift step sql' && s.parentSpanId === phases[0]!.spanId);
    expect(attr(expandStep!, 'pgshift.step')).toMatch(/add/);
    expect(steps.every((s) => phases.some((p) => p.spanId === s.parentSpanId))).toBe(true);

    expect(points('pgshift.backfill.rows').reduce((sum, p) => sum + value(p), 0)).toBe(ROWS);
    expect(points('pgshift.backfill.rate').length).toBeGreaterThan(0);
    expect(Number(points('pgshift.backfill.batch.duration').reduce((n, p) => n + Number(p.count), 0))).toBe(ROWS / 200);
    expect(points('pgshift.lock.wait.duration').length).toBeGreaterThan(0);

    // The gate: shut while an old-code session that wrote the old columns is still connected.
    const oldRelease = await db.connect();
    await oldRelease.query(`UPDATE users SET full_name = 'Old Writer' WHERE id = 7`);
    const refused = await runCli(['plan', 'apply', '--phase', 'stop-write', ...args], env);
    await oldRelease.end();
    expect(refused.code).toBe(2);
    const gate = points('pgshift.gate.state');
    expect(gate.map(value)).toEqual([1]);
    expect(gate[0]!.attributes).toEqual(expect.arrayContaining([{ key: 'phase', value: { stringValue: 'stop-write' } }]));
    const failed = spans().filter((s) => s.name === 'migrate plan apply');
    expect(failed).toHaveLength(2);
  });
});
