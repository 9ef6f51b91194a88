import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/** How often the sampler looks at `pg_locks`. */
export const SAMPLE_EVERY_MS = 20;

/** The longest lock wait seen in one window, and who was in the way. */
export interface LockWait {
  readonly ms: number;
  readonly lock: string;
  readonly blockedBy: string | null;
}

/**
 * Watches the app's connections from the server side: every sample reads
 * `pg_locks.waitstart` (PostgreSQL 14+) of their ungranted locks, so a wait is
 * measured on the server's clock from the moment the backend queued, whatever
 * the client machine's CPU load adds to the round trip. A wait is seen up to
 * one sample late, so figures may read a few milliseconds short.
 */
export class LockWaitSampler {
  /** The window waits are attributed to; the scenario moves it at each phase. */
  window = 'start';
  readonly longest = new Map<string, LockWait>();
  samples = 0;
  private stopped = false;
  private running: Promise<void> | null = null;
  private client: pg.Client | null = null;

  constructor(
    private readonly url: string,
    private readonly applicationName: string,
  ) {}

  async start(): Promise<void> {
    this.client = new pg.Client({ connectionString: this.url, application_name: 'pgshift-example-lock-sampler' });
    this.client.on('error', () => undefined);
    await this.client.connect();
    this.running = this.loop(this.client);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
    await this.client?.end().catch(() => undefined);
  }

  /** The longest wait over all windows. */
  get max(): (LockWait & { window: string }) | null {
    let best: (LockWait & { window: string }) | null = null;
    for (const [window, wait] of this.longest) if (!best || wait.ms > best.ms) best = { ...wait, window };
    return best;
  }

  private async loop(client: pg.Client): Promise<void> {
    // Who was in the way of each wait (backend and when it queued) when last seen: the sample taken as the holder
    // lets go still shows the wait, at its longest, with nobody blocking it any more.
    const blockers = new Map<string, string>();
    while (!this.stopped) {
      const window = this.window;
      const { rows } = await client.query<{ ms: number; lock: string; blocked_by: string | null; wait: string }>(
        `SELECT l.pid || ' ' || l.waitstart AS wait, (extract(epoch FROM clock_timestamp() - l.waitstart) * 1000)::float8 AS ms,
                l.mode || ' on ' || coalesce(l.relation::regclass::text, l.locktype) AS lock,
                (SELECT string_agg(DISTINCT coalesce(nullif(b.application_name, ''), 'pid ' || b.pid) || ': ' || left(regexp_replace(b.query, '\\s+', ' ', 'g'), 60), '; ')
                   FROM pg_stat_activity b WHERE b.pid = ANY (pg_blocking_pids(l.pid))) AS blocked_by
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE NOT l.granted AND l.waitstart IS NOT NULL AND a.application_name = $1 AND a.datname = current_database()`,
        [this.applicationName],
      );
      this.samples++;
      for (const r of rows) {
        if (r.blocked_by) blockers.set(r.wait, r.blocked_by);
        const seen = this.longest.get(window);
        if (!seen || r.ms > seen.ms) this.longest.set(window, { ms: r.ms, lock: r.lock, blockedBy: blockers.get(r.wait) ?? null });
      }
      await sleep(SAMPLE_EVERY_MS);
    }
  }
}
