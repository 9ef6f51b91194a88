import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, type Document } from 'yaml';
import type { z } from 'zod';
import {
  DEFAULT_ABANDONED_SLOT_AFTER_MS,
  DEFAULT_BATCH_SIZE,
  DEFAULT_CONTRACT_KEEP_MS,
  DEFAULT_LOCK_TIMEOUT_MS,
  DEFAULT_PAUSE_MS,
  DEFAULT_TARGET_BATCH_MS,
  DEFAULT_MAX_REPLICA_LAG_MS,
  DEFAULT_OLD_CODE_QUIET_MS,
  DEFAULT_RETRIES,
  DEFAULT_MAX_WAIT_MS,
  DEFAULT_STATEMENT_TIMEOUT_MS,
  DEFAULT_HOOK_PROGRESS_EVERY,
  DEFAULT_HOOK_TIMEOUT_MS,
} from '../defaults.js';
import { PlanError, type PlanProblem } from '../errors.js';
import { toMilliseconds } from './duration.js';
import { CHANGE_KINDS } from '../changes/kinds/registry.js';
import { HOOK_EVENTS, isPlanName, planFileSchema, type PlanFile } from './schema.js';
import type { Change, HookSettings, Plan } from './types.js';

/** Plan file extensions pgshift reads. */
const PLAN_EXTENSIONS = ['.yaml', '.yml'];

/**
 * Parse and validate one plan file's text. Every problem in the file is
 * reported at once, each with its line and field.
 */
export function parsePlan(text: string, file: string): Plan {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const problems: PlanProblem[] = doc.errors.map((e) => ({
    file,
    line: lines.linePos(e.pos[0]).line,
    path: '',
    message: e.message.split('\n')[0] ?? e.message,
  }));
  if (problems.length) throw new PlanError(problems);
  if (!isMap(doc.contents)) throw new PlanError([{ file, line: 1, path: '', message: 'a plan must be a YAML mapping' }]);

  const parsed = planFileSchema.safeParse(doc.toJS());
  if (!parsed.success) throw new PlanError(parsed.error.issues.map((issue) => toProblem(issue, doc, lines, file)));
  const data = parsed.data;

  const kinds = CHANGE_KINDS.filter((k) => data[k] !== undefined);
  if (kinds.length !== 1) {
    throw new PlanError([
      {
        file,
        line: 1,
        path: '',
        message: kinds.length === 0 ? `needs exactly one change: ${CHANGE_KINDS.join(' | ')}` : `has ${kinds.join(' and ')}; a plan makes exactly one change`,
      },
    ]);
  }
  const name = data.plan ?? path.basename(file).replace(/\.ya?ml$/, '');
  if (!isPlanName(name)) {
    throw new PlanError([{ file, line: 1, path: 'plan', message: `plan name ${JSON.stringify(name)} must be kebab-case; set "plan:" or rename the file` }]);
  }
  return build(data, name, file);
}

function build(data: PlanFile, name: string, file: string): Plan {
  const change = toChange(data);
  const table = splitTableName(data.table);
  const checksum = createHash('sha256')
    .update(JSON.stringify({ table, key: data.key ?? null, change }))
    .digest('hex');
  return {
    name,
    file,
    table,
    key: data.key,
    after: data.after === undefined ? [] : typeof data.after === 'string' ? [data.after] : data.after,
    change,
    backfill: {
      batchSize: data.backfill?.batch_size ?? DEFAULT_BATCH_SIZE,
      pauseMs: data.backfill?.pause ?? DEFAULT_PAUSE_MS,
      // 0 turns the adaptive size off: every batch is `batch_size` rows.
      targetBatchMs: data.backfill?.target_batch_ms === 0 ? null : (data.backfill?.target_batch_ms ?? DEFAULT_TARGET_BATCH_MS),
      maxReplicaLagMs: data.backfill?.max_replica_lag ?? DEFAULT_MAX_REPLICA_LAG_MS,
      // Unset: decided from the server when the backfill starts (backfill/default-workers.ts).
      workers: data.backfill?.workers ?? null,
      // 0 turns each of these throttles off, as for max_replica_lag.
      maxSlotLagBytes: data.backfill?.max_slot_lag || null,
      abandonedSlotAfterMs: data.backfill?.abandoned_slot_after ?? DEFAULT_ABANDONED_SLOT_AFTER_MS,
      maxWalRateBytes: data.backfill?.max_wal_rate || null,
      throttleQuery: data.backfill?.throttle_query ?? null,
      maxActiveSessions: data.backfill?.max_active_sessions || null,
    },
    guards: {
      lockTimeoutMs: data.guards?.lock_timeout ?? DEFAULT_LOCK_TIMEOUT_MS,
      statementTimeoutMs: data.guards?.statement_timeout ?? DEFAULT_STATEMENT_TIMEOUT_MS,
      retries: data.guards?.retries ?? DEFAULT_RETRIES,
      maxWaitMs: data.guards?.max_wait ?? DEFAULT_MAX_WAIT_MS,
      oldCodeQuietMs: data.guards?.old_code_quiet ?? defaultOldCodeQuiet(),
    },
    // Not in the checksum, like the guards: keeping the archive longer or shorter is not an edit of the migration.
    contract: { keepMs: data.contract?.keep ?? DEFAULT_CONTRACT_KEEP_MS },
    hooks: toHooks(data.hooks),
    checksum,
  };
}

/** `hooks:` as settings: one command per event and command, in the order written. */
function toHooks(hooks: PlanFile['hooks']): HookSettings {
  return {
    commands: HOOK_EVENTS.flatMap((event) => {
      const commands = hooks?.[event];
      return (commands === undefined ? [] : typeof commands === 'string' ? [commands] : commands).map((command) => ({ event, command }));
    }),
    progressEvery: hooks?.progress_every ?? DEFAULT_HOOK_PROGRESS_EVERY,
    timeoutMs: hooks?.timeout ?? DEFAULT_HOOK_TIMEOUT_MS,
  };
}

/** `PGSHIFT_OLD_CODE_QUIET` (a duration) when set, else `DEFAULT_OLD_CODE_QUIET_MS`. */
export function defaultOldCodeQuiet(): number {
  const env = process.env.PGSHIFT_OLD_CODE_QUIET;
  if (!env) return DEFAULT_OLD_CODE_QUIET_MS;
  const ms = toMilliseconds(env);
  if (ms === null) throw new PlanError(`PGSHIFT_OLD_CODE_QUIET=${env} is not a duration (e.g. 15m)`);
  return ms;
}

/** The one change kind present (checked by the caller), tagged with its name. */
function toChange(data: PlanFile): Change {
  const kind = CHANGE_KINDS.find((k) => data[k] !== undefined);
  if (!kind) throw new Error('unreachable: no change kind');
  return { kind, ...data[kind] } as Change;
}

/** `schema.table`, `"Odd.Name"`, or `table`, into parts without quotes. */
export function splitTableName(text: string): { schema?: string; name: string } {
  const parts = text.match(/"[^"]+"|[^."]+/g) ?? [text];
  const unquote = (p: string): string => (p.startsWith('"') ? p.slice(1, -1) : p);
  return parts.length === 2 ? { schema: unquote(parts[0]!), name: unquote(parts[1]!) } : { name: unquote(parts[0]!) };
}

function toProblem(issue: z.core.$ZodIssue, doc: Document, lines: LineCounter, file: string): PlanProblem {
  const keyPath = issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
  // Unknown keys are reported on their parent; point at the key itself.
  const unknown = issue.code === 'unrecognized_keys' ? issue.keys : [];
  const nodePath = unknown.length ? [...keyPath, unknown[0]!] : keyPath;
  return {
    file,
    line: lineOf(doc, lines, nodePath),
    path: formatPath(nodePath),
    message: issue.code === 'unrecognized_keys' ? `unknown key(s) ${unknown.map((k) => JSON.stringify(k)).join(', ')}` : issue.message,
  };
}

function lineOf(doc: Document, lines: LineCounter, keyPath: readonly (string | number)[]): number | undefined {
  for (let depth = keyPath.length; depth >= 0; depth--) {
    const sub = keyPath.slice(0, depth);
    const parent = sub.length ? (doc.getIn(sub.slice(0, -1), true) as unknown) : doc.contents;
    // A missing key has no node: report its parent's line instead.
    const node = sub.length ? (findKeyNode(parent, sub[sub.length - 1]!) ?? (doc.getIn(sub, true) as unknown)) : parent;
    const range = (node as { range?: [number, number, number] } | null)?.range;
    if (range) return lines.linePos(range[0]).line;
  }
  return undefined;
}

function findKeyNode(parent: unknown, key: string | number): unknown {
  if (!isMap(parent)) return undefined;
  const pair = parent.items.find((item) => (item.key as { value?: unknown } | null)?.value === key);
  return pair?.key;
}

function formatPath(keyPath: readonly (string | number)[]): string {
  return keyPath.map((p, i) => (typeof p === 'number' ? `[${p}]` : i ? `.${p}` : p)).join('');
}

/** Read and validate one plan file. */
export async function loadPlanFile(file: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new PlanError([{ file, path: '', message: `cannot read plan file: ${(error as Error).message}` }]);
  }
  return parsePlan(text, file);
}

/**
 * Load every plan in `dir` (sorted by file name), or only the named ones.
 * Every problem of every relevant file is reported together: all files when
 * no names are given; otherwise the named plans' files, files that could not
 * be read whose name matches, and names no file has. Two files with the same
 * plan name are refused.
 */
export async function loadPlans(dir: string, names: readonly string[] = []): Promise<Plan[]> {
  const { plans, problems } = await readPlans(dir, names);
  if (problems.length) throw new PlanError(problems);
  return plans;
}

/**
 * `loadPlans` without the throw: the plans that are valid, and every problem
 * of the others, so `lint` can check the valid ones against the catalog in
 * the same run.
 */
export async function readPlans(dir: string, names: readonly string[] = []): Promise<{ plans: Plan[]; problems: PlanProblem[] }> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).filter((f) => PLAN_EXTENSIONS.includes(path.extname(f))).sort();
  } catch (error) {
    return { plans: [], problems: [{ file: dir, path: '', message: `cannot read the plan directory: ${(error as Error).message}` }] };
  }
  const plans: Plan[] = [];
  const broken: { file: string; problems: readonly PlanProblem[] }[] = [];
  for (const entry of entries) {
    const file = path.join(dir, entry);
    try {
      plans.push(await loadPlanFile(file));
    } catch (error) {
      if (!(error instanceof PlanError)) throw error;
      broken.push({ file, problems: error.problems });
    }
  }
  const wanted = (name: string): boolean => names.length === 0 || names.includes(name);
  const stem = (file: string): string => path.basename(file).replace(/\.ya?ml$/, '');
  const problems: PlanProblem[] = broken.filter((b) => wanted(stem(b.file))).flatMap((b) => b.problems);
  const seen = new Map<string, string>();
  const duplicates = new Set<Plan>();
  for (const p of plans) {
    const other = seen.get(p.name);
    if (other && wanted(p.name)) {
      problems.push({ file: p.file, path: 'plan', message: `plan name "${p.name}" is also used by ${other}` });
      duplicates.add(p);
    }
    seen.set(p.name, p.file);
  }
  for (const name of names) {
    if (!seen.has(name) && !broken.some((b) => stem(b.file) === name)) {
      const unreadable = broken.length ? `; ${broken.length} file(s) could not be read: ${broken.map((b) => b.file).join(', ')}` : '';
      problems.push({ file: dir, path: '', message: `no plan named "${name}" in ${dir} (have: ${[...seen.keys()].join(', ') || 'none'}${unreadable})` });
    }
  }
  return { plans: plans.filter((p) => wanted(p.name) && !duplicates.has(p)), problems };
}

/** The line of a field (`split.into[1].type`) in a plan file's text, or of its nearest parent that is there. */
export function lineOfField(text: string, field: string): number | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const keyPath = field
    .split(/\.|\[(\d+)\]/)
    .filter((p): p is string => Boolean(p))
    .map((p) => (/^\d+$/.test(p) ? Number(p) : p));
  return lineOf(doc, lines, keyPath);
}
