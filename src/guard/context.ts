import { connect, type Client, type ConnectionOptions } from '../db/client.js';
import type { Logger } from '../log.js';
import type { Guards } from '../plan/types.js';

/** What a step needs to run: the runner's connection, the guards, and the table for diagnostics. */
export interface RunContext {
  readonly client: Client;
  readonly connection: ConnectionOptions;
  readonly guards: Guards;
  readonly log: Logger;
  readonly table: { readonly oid: number; readonly display: string };
  /** Throws when the runner no longer holds the plan (its lease was lost); asked before each step and batch. */
  readonly stillHeld?: (() => void) | undefined;
  /** How often a CREATE INDEX CONCURRENTLY logs its progress (default `INDEX_PROGRESS_INTERVAL_MS`). */
  readonly progressEveryMs?: number | undefined;
  /** A second connection, opened on first need, that watches who blocks the runner. */
  monitor(): Promise<Client>;
  close(): Promise<void>;
}

/** Build a run context; `close()` ends the monitor connection if one was opened. */
export function runContext(fields: Omit<RunContext, 'monitor' | 'close'>): RunContext {
  let monitor: Promise<Client> | null = null;
  return {
    ...fields,
    monitor: () => (monitor ??= connect({ ...fields.connection, applicationName: 'pgshift monitor' })),
    close: async () => {
      if (monitor) await (await monitor).end().catch(() => undefined);
    },
  };
}
