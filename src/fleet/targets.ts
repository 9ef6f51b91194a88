import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PlanError } from '../errors.js';

/**
 * The databases of a fleet from a targets file: one connection URL or libpq
 * service name per line; blank lines and `#` comments are skipped. A service
 * name is looked up in pg_service.conf the way libpq does (PGSERVICEFILE,
 * else ~/.pg_service.conf, then PGSYSCONFDIR/pg_service.conf) and turned
 * into a URL, since the `pg` driver reads no service file itself.
 */
export async function readTargetsFile(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    throw new PlanError([{ file, path: '', message: `cannot read the targets file: ${error.code ?? error.message}` }]);
  });
  const lines = text.split('\n').map((l, i) => ({ line: i + 1, value: l.replace(/#.*$/, '').trim() }));
  const targets: string[] = [];
  for (const { line, value } of lines.filter((l) => l.value)) {
    if (/^postgres(ql)?:\/\//.test(value)) targets.push(value);
    else if (/^[A-Za-z0-9_.-]+$/.test(value)) targets.push(await serviceUrl(value, file, line));
    else throw new PlanError([{ file, line, path: '', message: `"${value}" is neither a postgres:// URL nor a service name` }]);
  }
  if (!targets.length) throw new PlanError([{ file, path: '', message: 'names no database' }]);
  return targets;
}

async function serviceUrl(name: string, file: string, line: number): Promise<string> {
  const files = [
    process.env.PGSERVICEFILE ?? path.join(os.homedir(), '.pg_service.conf'),
    path.join(process.env.PGSYSCONFDIR ?? '/etc/postgresql-common', 'pg_service.conf'),
  ];
  for (const candidate of files) {
    const params = parseServiceFile(await readFile(candidate, 'utf8').catch(() => '')).get(name);
    if (params) return toUrl(params);
  }
  throw new PlanError([{ file, line, path: '', message: `service "${name}" is in no service file (${files.join(', ')})` }]);
}

/** pg_service.conf: `[name]` sections of `key=value` lines. */
function parseServiceFile(text: string): Map<string, Map<string, string>> {
  const services = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) services.set(section[1]!, (current = new Map()));
    else if (current && line.includes('=')) current.set(line.slice(0, line.indexOf('=')).trim(), line.slice(line.indexOf('=') + 1).trim());
  }
  return services;
}

function toUrl(p: Map<string, string>): string {
  const url = new URL('postgresql://localhost');
  url.hostname = p.get('host') ?? 'localhost';
  if (p.get('port')) url.port = p.get('port')!;
  if (p.get('user')) url.username = encodeURIComponent(p.get('user')!);
  if (p.get('password')) url.password = encodeURIComponent(p.get('password')!);
  url.pathname = `/${encodeURIComponent(p.get('dbname') ?? p.get('user') ?? 'postgres')}`;
  if (p.get('sslmode')) url.searchParams.set('sslmode', p.get('sslmode')!);
  return url.toString();
}

/** A target as people may see it: `user@host:port/db`, never the password. */
export function targetLabel(url: string): string {
  try {
    const u = new URL(url);
    return `${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host}${u.pathname}`;
  } catch {
    return '(unparsable URL)';
  }
}
