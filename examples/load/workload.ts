import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import type { AppFamily, Row, Side, UsersApp, Version } from '../app/types.js';

/** `application_name` of the app's connections, so the lock-wait sampler can find them. */
export const APP_NAME = 'pgshift-example-app';

export type Op = 'insert' | 'update' | 'read' | 'list';

/** Share of each operation in the mix (out of 100). */
export const OP_MIX: Readonly<Record<Op, number>> = { insert: 15, update: 35, read: 35, list: 15 };

/** Share of updates that go to the hot rows, when there are any. */
export const HOT_SHARE = 0.2;

/** An acknowledged write: the row it touched and what it put there. */
export interface WriteRecord {
  readonly id: string;
  readonly side: Side;
  readonly row: Row;
  readonly window: string;
  readonly version: Version;
  /** A hot row every client updates: it must end as one of its writes, whole. */
  readonly shared: boolean;
}

/** A failed operation, or one that saw something a client must never see (a row or name gone). */
export interface ClientError {
  readonly window: string;
  readonly version: Version;
  readonly op: Op;
  readonly code: string | null;
  readonly message: string;
}

/** Something a client saw that it must never see: its own acknowledged row, or a name, gone. */
export class Anomaly extends Error {}

/** What the clients did in one window of the run. */
export interface WindowStats {
  transactions: number;
  readonly latenciesMs: number[];
}

export interface WorkloadOptions {
  readonly url: string;
  readonly family: AppFamily;
  readonly clients: number;
  /** Rows 1..seedRows exist before the run; each client owns those above the hot rows with id ≡ its index (mod clients). */
  readonly seedRows: number;
  /**
   * Rows 1..hotRows are updated by every client, whatever release it runs, so
   * old and new code write the same rows at once (0 = none).
   */
  readonly hotRows: number;
  /** Pause between two operations of one client, so the clients leave the DDL and the backfill some CPU. */
  readonly thinkMs: number;
}

/**
 * N clients running the app's operation mix, each on its own connection.
 * Most writes go to rows the client owns (seed rows of its residue class,
 * rows it inserted), so the last acknowledged write of such a row is what it
 * must hold; a share of updates goes to a few hot rows that all clients
 * write, which must end as one of their acknowledged writes, never a mix. Which release each client runs is switched by `deploy`, as a rolling
 * deploy would: an operation in flight finishes on the release it started on,
 * and a client whose release changes reconnects, as a new process would (so
 * pgshift's old-code gate sees the old release's sessions end).
 */
export class Workload {
  /** The window operations are attributed to; the scenario moves it at each phase. */
  window = 'start';
  readonly writes: WriteRecord[] = [];
  readonly errors: ClientError[] = [];
  readonly stats = new Map<string, WindowStats>();
  private releases: readonly Version[] = ['v1'];
  private generation = 0;
  private stopped = false;
  private counter = 0;
  private running: Promise<void>[] = [];

  constructor(private readonly options: WorkloadOptions) {}

  /** Which releases run now: client i runs `versions[i % versions.length]`. */
  deploy(versions: readonly Version[]): void {
    this.releases = versions;
    this.generation++;
  }

  get deployed(): readonly Version[] {
    return this.releases;
  }

  /** Connect every client and start the loop. */
  async start(versions: readonly Version[]): Promise<void> {
    this.deploy(versions);
    const clients = await Promise.all(Array.from({ length: this.options.clients }, () => this.connect()));
    this.running = clients.map((client, i) => this.loop(i, client));
  }

  /** Let every client finish its operation in flight, then disconnect. */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  /**
   * A slow request, as a real app has: on a connection of its own, insert a
   * user, then in one transaction read it, hold the transaction `holdMs` (a
   * call to another service, say) and update it. Resolves once the
   * transaction holds its locks, so a phase started next has to wait for it;
   * its outcome is recorded like any client's. It runs the release of client 0.
   */
  async slowRequest(holdMs: number): Promise<void> {
    const app = this.options.family.versions[this.releases[0]!]();
    const window = this.window;
    const client = await this.connect();
    let op: Op = 'insert';
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const done = (async () => {
      try {
        const first = app.values(++this.counter);
        const id = await app.insert(client, first);
        this.writes.push({ id, side: app.writes, row: first, window, version: app.version, shared: false });
        op = 'update';
        await client.query('BEGIN');
        if ((await app.read(client, id)) === null) throw new Anomaly(`slow request: read of id ${id} found no row or an empty name`);
        holding();
        await sleep(holdMs);
        const row = app.values(++this.counter);
        if (!(await app.update(client, id, row))) throw new Anomaly(`slow request: update found no row with id ${id}`);
        await client.query('COMMIT');
        this.writes.push({ id, side: app.writes, row, window, version: app.version, shared: false });
        this.statsOf(window).transactions += 2;
      } catch (error) {
        const e = error as { code?: unknown; message?: string };
        this.errors.push({
          window,
          version: app.version,
          op,
          code: typeof e.code === 'string' ? e.code : null,
          message: `${e.message ?? String(error)} (slow request)`,
        });
      } finally {
        holding();
        await client.end().catch(() => undefined);
      }
    })();
    this.running.push(done);
    await held;
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: this.options.url, application_name: APP_NAME });
    // A dropped connection is reported by the failing query; without a listener Node would crash.
    client.on('error', () => undefined);
    await client.connect();
    return client;
  }

  private statsOf(window: string): WindowStats {
    let s = this.stats.get(window);
    if (!s) this.stats.set(window, (s = { transactions: 0, latenciesMs: [] }));
    return s;
  }

  private async loop(index: number, first: pg.Client): Promise<void> {
    let client = first;
    let app: UsersApp | null = null;
    let generation = -1;
    const inserted: string[] = [];
    while (!this.stopped) {
      if (generation !== this.generation) {
        generation = this.generation;
        const version = this.releases[index % this.releases.length]!;
        if (app && app.version !== version) {
          // Another release is another process: it connects anew, and the old release's session ends with it.
          await client.end().catch(() => undefined);
          client = await this.connect();
        }
        app = this.options.family.versions[version]();
      }
      const current = app!;
      const op = pickOp();
      const window = this.window;
      const started = performance.now();
      try {
        await this.run(current, op, client, index, inserted, window);
        const s = this.statsOf(window);
        s.transactions++;
        s.latenciesMs.push(performance.now() - started);
      } catch (error) {
        const e = error as { code?: unknown; message?: string };
        this.errors.push({
          window,
          version: current.version,
          op,
          code: typeof e.code === 'string' ? e.code : null,
          message: e.message ?? String(error),
        });
        // A connection the server dropped stays dead: replace it, as a pool would.
        if (typeof e.code !== 'string' && !(error instanceof Anomaly)) {
          await client.end().catch(() => undefined);
          client = await this.connect();
        }
      }
      if (this.options.thinkMs > 0) await sleep(this.options.thinkMs);
    }
    await client.end().catch(() => undefined);
  }

  private async run(app: UsersApp, op: Op, db: pg.Client, index: number, inserted: string[], window: string): Promise<void> {
    const write = (id: string, row: Row, shared = false): void => {
      this.writes.push({ id, side: app.writes, row, window, version: app.version, shared });
    };
    switch (op) {
      case 'insert': {
        const row = app.values(++this.counter);
        const id = await app.insert(db, row);
        inserted.push(id);
        write(id, row);
        return;
      }
      case 'update': {
        const hot = this.options.hotRows > 0 && Math.random() < HOT_SHARE;
        const id = hot ? String(1 + Math.floor(Math.random() * this.options.hotRows)) : this.ownedId(index, inserted);
        if (id === null) return;
        const row = app.values(++this.counter);
        if (!(await app.update(db, id, row))) throw new Anomaly(`update found no row with id ${id}`);
        write(id, row, hot);
        return;
      }
      case 'read': {
        const id = this.ownedId(index, inserted);
        if (id === null) return;
        if ((await app.read(db, id)) === null) throw new Anomaly(`read of id ${id} found no row or an empty name`);
        return;
      }
      case 'list': {
        const after = String(Math.floor(Math.random() * Math.max(1, this.options.seedRows)));
        const { unnamed } = await app.list(db, after, 20);
        if (unnamed > 0) throw new Anomaly(`list after id ${after} showed ${unnamed} users without a name`);
        return;
      }
    }
  }

  /** A row this client owns: half the time one it inserted, else a seed row of its residue class above the hot rows. */
  private ownedId(index: number, inserted: readonly string[]): string | null {
    const { seedRows, clients, hotRows } = this.options;
    // Seed row ids of this client are 1 + index + clients * k, for k in [first, last].
    const first = Math.max(0, Math.ceil((hotRows - index) / clients));
    const last = Math.floor((seedRows - 1 - index) / clients);
    if (inserted.length && (Math.random() < 0.5 || last < first)) {
      return inserted[Math.floor(Math.random() * inserted.length)]!;
    }
    if (last < first) return null;
    return String(1 + index + clients * (first + Math.floor(Math.random() * (last - first + 1))));
  }
}

function pickOp(): Op {
  let r = Math.random() * 100;
  for (const [op, share] of Object.entries(OP_MIX) as [Op, number][]) {
    if ((r -= share) < 0) return op;
  }
  return 'read';
}

/** The q-quantile (0..1) of some latencies, nearest rank; 0 for none. */
export function quantile(values: readonly number[], q: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
