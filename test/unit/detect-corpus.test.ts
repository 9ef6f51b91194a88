import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { detect, type Detection } from '../../src/api/detect.js';
import { CHANGE_KINDS } from '../../src/changes/kinds/registry.js';
import { parsePlan } from '../../src/plan/load.js';

/**
 * `detect` on real migration files from public projects
 * (test/fixtures/detect-corpus/, sources and licences in SOURCES.md),
 * scored against labels written by hand (labels.json): recall and precision
 * per statement, on the files the rules were written against (tuning/) and
 * on files kept aside until the rules were done (heldout/). Each project
 * folder is one run, as a project's migrations folder would be.
 */

const CORPUS = fileURLToPath(new URL('../fixtures/detect-corpus/', import.meta.url));

interface Label {
  readonly line: number;
  readonly unsafe: boolean;
  readonly class?: string;
}
type Labels = Record<string, { statements: Label[] }>;

/** The plan kind each labelled class should propose, when it proposes one. */
const PLAN_KIND: Readonly<Record<string, string>> = {
  'rename-column': 'rename',
  'drop-column': 'drop',
  'drop-add-rename': 'rename',
  'drop-add-retype': 'retype',
  'retype-rewrite': 'retype',
  'set-not-null': 'constrain',
  'add-column-required': 'add',
  'add-column-rewrite': 'add',
  'index-not-concurrent': 'index',
  'rename-table': 'rename-table',
};

/**
 * Plans the corpus showed to be ones detect should not have written, found on
 * held-out files after the rules were done, kept here (not fixed by tuning) so
 * that any other one fails the test.
 */
const KNOWN_WRONG_PLANS: Readonly<Record<string, string>> = {
  // `TYPE UUID, SET NOT NULL` on a column an earlier migration (not in the corpus) added as UUID: the retype is a no-op,
  // but with the old type unknown detect proposes a retype plan beside the SET NOT NULL it rightly reports.
  'heldout/kratos/migrations/sql/20210913095309000003_identity_recovery_tokens.postgres.up.sql:1': 'retype',
};

interface Score {
  tp: number;
  fp: string[];
  fn: string[];
}

async function run(set: 'tuning' | 'heldout', labels: Labels): Promise<{ score: Score; findings: (Detection & { key: string })[] }> {
  const findings: (Detection & { key: string })[] = [];
  for (const project of (await readdir(path.join(CORPUS, set))).sort()) {
    const result = await detect([path.join(CORPUS, set, project)]);
    for (const f of result.findings) findings.push({ ...f, key: `${path.relative(CORPUS, f.file)}:${f.line}` });
  }
  const unsafe = new Set(
    Object.entries(labels)
      .filter(([file]) => file.startsWith(`${set}/`))
      .flatMap(([file, { statements }]) => statements.filter((s) => s.unsafe).map((s) => `${file}:${s.line}`)),
  );
  const flagged = new Set(findings.map((f) => f.key));
  return {
    findings,
    score: {
      tp: [...flagged].filter((k) => unsafe.has(k)).length,
      fp: [...flagged].filter((k) => !unsafe.has(k)),
      fn: [...unsafe].filter((k) => !flagged.has(k)),
    },
  };
}

const ratio = (n: number, d: number): number => (d === 0 ? 1 : n / d);

describe('detect on a corpus of real migrations', () => {
  it('finds ≥ 97 % of the unsafe statements with ≥ 95 % precision, and each plan names its statement table, column and labelled kind', async () => {
    const labels = (JSON.parse(await readFile(path.join(CORPUS, 'labels.json'), 'utf8')) as { files: Labels }).files;
    const tuning = await run('tuning', labels);
    const heldout = await run('heldout', labels);
    const all: Score = { tp: tuning.score.tp + heldout.score.tp, fp: [...tuning.score.fp, ...heldout.score.fp], fn: [...tuning.score.fn, ...heldout.score.fn] };
    const line = (name: string, s: Score): string =>
      `${name}: recall ${ratio(s.tp, s.tp + s.fn.length).toFixed(3)} (${s.tp}/${s.tp + s.fn.length}), precision ${ratio(s.tp, s.tp + s.fp.length).toFixed(3)} (${s.tp}/${s.tp + s.fp.length})` +
      (s.fp.length ? `\n  false alarms: ${s.fp.join(', ')}` : '') +
      (s.fn.length ? `\n  missed: ${s.fn.join(', ')}` : '');
    console.log([line('all', all), line('tuning', tuning.score), line('held-out', heldout.score)].join('\n'));

    // Every plan: a kind that exists, on a statement labelled unsafe with the class that proposes that kind, naming the
    // table and column the statement names, and loadable (a retype only lacks its way back, marked for a person).
    const classOf = new Map<string, string | undefined>(
      Object.entries(labels).flatMap(([file, { statements }]) => statements.map((s) => [`${file}:${s.line}`, s.class] as const)),
    );
    const plans = [...tuning.findings, ...heldout.findings].filter((f) => f.change);
    expect(plans.length).toBeGreaterThan(20);
    const wrong: string[] = [];
    for (const f of plans) {
      const change = f.change!;
      const label = classOf.get(f.key);
      // A statement is labelled with one class; an ADD COLUMN clause beside a labelled one (a drop-add-rename's
      // statement that also adds a NOT NULL column) is found on its own, and its add plan is the one its rule calls for.
      const ownClause = change.kind === 'add' && PLAN_KIND[f.rule] === 'add';
      if (label && PLAN_KIND[label] !== change.kind && !ownClause) {
        wrong.push(`${f.key}: ${change.kind} plan on a ${label} statement`);
        expect(KNOWN_WRONG_PLANS[f.key], f.key).toBe(change.kind);
        continue;
      }
      expect(CHANGE_KINDS, f.key).toContain(change.kind);
      // A plan on a false alarm is counted in the precision above; its table and column are still checked below.
      const text = await readFile(f.file, 'utf8');
      const statement = text
        .split('\n')
        .slice(f.line - 1)
        .join('\n');
      if (change.kind === 'index') {
        // An index plan: the statement builds that index on that table, from those columns.
        expect(statement, f.key).toMatch(new RegExp(`CREATE\\s+(UNIQUE\\s+)?INDEX\\s+(IF NOT EXISTS\\s+)?"?${change.name}"?\\s`, 'i'));
        for (const c of [change.table.name, ...change.columns]) expect(statement, f.key).toContain(c);
        expect(parsePlan(f.plan!.yaml, 'p.yaml'), f.key).toMatchObject({ table: { name: change.table.name }, change: { kind: 'index', name: change.name } });
        continue;
      }
      expect(statement, f.key).toMatch(new RegExp(`ALTER TABLE\\s+(IF EXISTS\\s+)?(ONLY\\s+)?"?${change.table.name}"?\\s`, 'i'));
      if (change.kind === 'rename-table') {
        // A table rename names no column: the plan names the statement's table and its new name.
        expect(statement, f.key).toMatch(new RegExp(`RENAME\\s+TO\\s+"?${change.to}"?`, 'i'));
        expect(parsePlan(f.plan!.yaml, 'p.yaml'), f.key).toMatchObject({ table: { name: change.table.name }, change: { kind: 'rename-table', to: change.to } });
        continue;
      }
      expect(statement, f.key).toContain(change.column);
      if (change.kind === 'rename') expect(text, f.key).toContain(change.to);
      const yaml = f.plan!.yaml;
      if (change.kind === 'retype') expect(() => parsePlan(yaml, 'p.yaml'), f.key).toThrow(/retype\.reverse: is a placeholder/);
      else if (change.kind === 'add' && change.value === undefined) expect(() => parsePlan(yaml, 'p.yaml'), f.key).toThrow(/add\.value: is a placeholder/);
      else expect(parsePlan(yaml, 'p.yaml'), f.key).toMatchObject({ table: { name: change.table.name }, change: { kind: change.kind, column: change.column } });
    }

    console.log(
      `plans: ${plans.length} written, ${wrong.length} of a kind the statement's label does not call for${wrong.length ? `:\n  ${wrong.join('\n  ')}` : ''}`,
    );
    expect(wrong.length).toBe(Object.keys(KNOWN_WRONG_PLANS).length);
    expect(ratio(all.tp, all.tp + all.fn.length)).toBeGreaterThanOrEqual(0.97);
    expect(ratio(all.tp, all.tp + all.fp.length)).toBeGreaterThanOrEqual(0.95);
  });
});
