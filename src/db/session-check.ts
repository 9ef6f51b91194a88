import { randomUUID } from 'node:crypto';
import { SESSION_CHECKS } from '../defaults.js';
import { SessionNotKeptError } from '../errors.js';
import { rememberBackendPid, type Client } from './client.js';

/** A custom setting the runner sets for its session; not a PostgreSQL parameter. */
const TOKEN_SETTING = 'pgshift.session_token';

/** What a connection's session looked like when it was marked: its backend and a token only it set. */
export interface SessionMark {
  readonly pid: number;
  readonly token: string;
}

/**
 * Mark a connection's session: a random token in a session-level setting
 * (`set_config(..., false)`), and the backend's process id, which is also
 * remembered for lock diagnostics (`backendPid`). Each query below runs in
 * its own transaction, so a transaction pooler is free to move the next one
 * to another backend, and that is what the checks look for.
 */
export async function markSession(client: Client): Promise<SessionMark> {
  const token = randomUUID();
  const { rows } = await client.query<{ pid: number }>(`SELECT pg_backend_pid() AS pid, set_config($1, $2, false)`, [TOKEN_SETTING, token]);
  const pid = rows[0]!.pid;
  rememberBackendPid(client, pid);
  return { pid, token };
}

/** Why the connection's session is not the marked one any more, or null when it still is. */
export async function sessionChange(client: Client, mark: SessionMark): Promise<string | null> {
  const { rows } = await client.query<{ pid: number; token: string | null }>(`SELECT pg_backend_pid() AS pid, current_setting($1, true) AS token`, [
    TOKEN_SETTING,
  ]);
  const { pid, token } = rows[0]!;
  if (pid !== mark.pid) return `its backend changed from pid ${mark.pid} to pid ${pid} between two statements`;
  if (token !== mark.token) return `a session setting made in one transaction was ${token ? 'replaced' : 'gone'} in the next`;
  return null;
}

/**
 * Refuse (exit 2) unless both connections keep their own session: each
 * keeps its backend and its token across several transactions, and the two
 * never share a backend. A transaction pooler that hands both connections
 * the same idle server (a pool of one, or the most recently used server)
 * shows up as a shared pid or a token overwritten by the other connection;
 * one that spreads them shows up as a changed pid. Returns the main
 * connection's mark, for the checks at phase boundaries.
 */
export async function requireSessions(main: Client, side: Client): Promise<SessionMark> {
  const a = await markSession(main);
  const b = await markSession(side);
  if (a.pid === b.pid) throw new SessionNotKeptError(`two connections of the runner were served by one backend, pid ${a.pid}`);
  for (let i = 0; i < SESSION_CHECKS; i++) {
    for (const [client, mark] of [
      [main, a],
      [side, b],
    ] as const) {
      const change = await sessionChange(client, mark);
      if (change) throw new SessionNotKeptError(change);
    }
  }
  return a;
}

/** Refuse (exit 2) if the connection's session is no longer the marked one. */
export async function requireSameSession(client: Client, mark: SessionMark): Promise<void> {
  const change = await sessionChange(client, mark);
  if (change) throw new SessionNotKeptError(change);
}
