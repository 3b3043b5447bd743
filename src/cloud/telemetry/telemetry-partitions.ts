import type { Logger } from 'pino';
import { sqlState, type Queryable, type Store } from '../store/store.js';

const DAY_MICROS = 86_400_000_000n;
const PREFIX = 'telemetry_values_p';

/** The day (since 1970, UTC) a time in microseconds falls in. */
export function dayOf(micros: bigint): number {
  const day = micros / DAY_MICROS - (micros % DAY_MICROS < 0n ? 1n : 0n);
  return Number(day);
}

function dayName(day: number): string {
  return `${PREFIX}${new Date(day * 86_400_000).toISOString().slice(0, 10).replaceAll('-', '')}`;
}

function dayStart(day: number): string {
  return new Date(day * 86_400_000).toISOString();
}

/**
 * Daily partitions of telemetry_values. Creating one takes a lock on the parent
 * table, so it never happens inside an ingest transaction: ingest asks for the
 * days its rows need first (known days cost nothing), and the maintenance loop
 * creates the coming days ahead of time.
 */
export class TelemetryPartitions {
  readonly #store: Store;
  readonly #known = new Set<number>();
  #loaded = false;
  #chain: Promise<void> = Promise.resolve();

  constructor(store: Store) {
    this.#store = store;
  }

  /** Whether every day has a partition this process knows of. */
  knows(days: Iterable<number>): boolean {
    for (const d of days) if (!this.#known.has(d)) return false;
    return true;
  }

  ensure(days: Iterable<number>): Promise<void> {
    const missing = [...new Set(days)].filter((d) => !this.#known.has(d));
    if (missing.length === 0) return Promise.resolve();
    // One creation at a time in this process; concurrent DDL on one name fails instead of waiting.
    const next = this.#chain.then(() => this.#create(missing));
    this.#chain = next.catch(() => {});
    return next;
  }

  async #create(missing: number[]): Promise<void> {
    if (!this.#loaded) await this.#load();
    for (const day of missing) {
      if (this.#known.has(day)) continue;
      // IF NOT EXISTS and the retry keep two servers creating the same day apart.
      try {
        await this.#store.exec(
          `CREATE TABLE IF NOT EXISTS ${dayName(day)} PARTITION OF telemetry_values FOR VALUES FROM ('${dayStart(day)}') TO ('${dayStart(day + 1)}')`,
        );
      } catch (error) {
        // Another server created it at the same moment.
        if (!['42P07', '23505'].includes(sqlState(error) ?? '')) throw error;
      }
      this.#known.add(day);
    }
  }

  /** Drops the partitions that end before `keepDays` days ago; returns their names. */
  async dropOlderThan(keepDays: number, now = Date.now()): Promise<string[]> {
    const oldestKept = Math.floor(now / 86_400_000) - keepDays;
    const dropped: string[] = [];
    for (const { name, day } of await listPartitions(this.#store)) {
      if (day >= oldestKept) continue;
      await this.#store.exec(`DROP TABLE IF EXISTS ${name}`);
      this.#known.delete(day);
      dropped.push(name);
    }
    return dropped;
  }

  async #load(): Promise<void> {
    for (const { day } of await listPartitions(this.#store)) this.#known.add(day);
    this.#loaded = true;
  }
}

export async function listPartitions(db: Queryable): Promise<{ name: string; day: number }[]> {
  const { rows } = await db.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'telemetry_values'::regclass ORDER BY 1`,
  );
  return rows
    .filter((r) => /^telemetry_values_p\d{8}$/.test(r.name))
    .map((r) => {
      const d = r.name.slice(PREFIX.length);
      return { name: r.name, day: Math.floor(Date.parse(`${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6, 8)}T00:00:00Z`) / 86_400_000) };
    });
}

/** Creates today's and the next days' partitions and applies retention; `run` repeats it hourly. */
export class TelemetryMaintenance {
  readonly #partitions: TelemetryPartitions;
  readonly #retentionDays: number;
  readonly #log: Logger;
  readonly #aheadDays: number;

  constructor(partitions: TelemetryPartitions, options: { retentionDays: number; logger: Logger; aheadDays?: number }) {
    this.#partitions = partitions;
    this.#retentionDays = options.retentionDays;
    this.#log = options.logger;
    this.#aheadDays = options.aheadDays ?? 3;
  }

  async once(now = Date.now()): Promise<void> {
    const today = Math.floor(now / 86_400_000);
    await this.#partitions.ensure(Array.from({ length: this.#aheadDays + 1 }, (_, i) => today + i));
    if (this.#retentionDays > 0) {
      const dropped = await this.#partitions.dropOlderThan(this.#retentionDays, now);
      if (dropped.length > 0) this.#log.info({ dropped, retention_days: this.#retentionDays }, 'telemetry partitions past retention dropped');
    }
  }

  async run(signal: AbortSignal, intervalMs = 3_600_000): Promise<void> {
    while (!signal.aborted) {
      try {
        await this.once();
      } catch (error) {
        this.#log.warn({ err: error }, 'telemetry partition maintenance failed; retrying later');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
    }
  }
}
