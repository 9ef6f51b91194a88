import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * action.yml's install step, `scripts/install-cli.sh`, on a copy of the
 * source tree as the action's checkout has it (no node_modules, no dist):
 * the CLI it installs runs `--version` and lints the example plans against
 * a database with examples/schema.sql, and the tree holds none of the
 * development dependencies. npm is asked to prefer its cache, so a machine
 * that has installed the project once downloads nothing.
 */

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOURCE = ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'README.md', 'src', 'bin', 'scripts/install-cli.sh'];

let db: TestDatabase;
let scratch: string;
let dest: string;
let installed: ReturnType<typeof spawnSync>;
beforeAll(async () => {
  db = await freshDatabase();
  await db.sql(await readFile(path.join(ROOT, 'examples/schema.sql'), 'utf8'));
  scratch = await mkdtemp(path.join(os.tmpdir(), 'pgshift-action-'));
  const checkout = path.join(scratch, 'action');
  for (const f of SOURCE) await cp(path.join(ROOT, f), path.join(checkout, f), { recursive: true });
  dest = path.join(scratch, 'runner-temp', 'pgshift');
  installed = spawnSync('bash', [path.join(checkout, 'scripts/install-cli.sh'), dest], {
    encoding: 'utf8',
    env: { ...process.env, npm_config_prefer_offline: 'true' },
  });
}, 300_000);
afterAll(async () => {
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

const migrate = (...args: string[]) => spawnSync(process.execPath, [path.join(dest, 'bin/migrate.js'), ...args], { encoding: 'utf8' });

describe("the action's install step", () => {
  it('installs a CLI that runs and lints the example plans', async () => {
    expect(installed.stderr).toBe('');
    expect(installed.status).toBe(0);
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
    const version = migrate('--version');
    expect(version.stdout.trim()).toBe(pkg.version);
    const lint = migrate('plan', 'lint', '--dir', path.join(ROOT, 'plans'), '--database-url', db.url, '--no-json');
    expect(lint.stderr).toBe('');
    expect(lint.status).toBe(0);
    const plans = (await readdir(path.join(ROOT, 'plans'))).filter((f) => f.endsWith('.yaml')).map((f) => f.replace(/\.yaml$/, ''));
    for (const plan of plans) expect(lint.stdout).toContain(plan);
  });

  it('holds the published files and the runtime dependencies, none of the development ones', async () => {
    expect((await readdir(dest)).sort()).toEqual(['README.md', 'bin', 'dist', 'node_modules', 'package-lock.json', 'package.json']);
    const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: object; devDependencies: object };
    const present = (name: string): boolean => existsSync(path.join(dest, 'node_modules', name, 'package.json'));
    for (const dep of Object.keys(pkg.dependencies)) expect(present(dep), dep).toBe(true);
    for (const dev of Object.keys(pkg.devDependencies)) expect(present(dev), dev).toBe(false);
  });
});
