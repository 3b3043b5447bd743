import type { Logger } from 'pino';
import { arrayParam } from '../store/array-param.js';
import type { Queryable } from '../store/store.js';
import { WakeableSleep } from '../../protocol/wakeable-sleep.js';
import { countPull, countPush, countSnapshot, pushOutcome, type IngestTransport, type PushAnswerLike } from './instruments.js';

/** Two-way events counted over every server process on one database (syncline_counters). */
export const TWOWAY_EVENTS = ['push_committed', 'push_duplicate', 'push_conflict', 'conflicting_rows', 'pulls', 'pulled_bundles', 'snapshots'] as const;
export type TwowayEvent = (typeof TWOWAY_EVENTS)[number];

export const ACTIVITY_FLUSH_MS = 2000;
/**
 * A device heard from again over the same transport within this is not written
 * again: last_seen_at is this coarse, and a fleet sending steadily costs one row
 * update per device per interval instead of one per device per flush (at fan-in,
 * 5,000 devices rewrote their row every 2 s).
 */
export const ACTIVITY_REFRESH_MS = 10_000;

interface Seen {
  at: number;
  transport: IngestTransport;
}

interface Pulled {
  scope: string;
  source: string;
  after: bigint;
  pulled: bigint;
  at: number;
}

/**
 * What devices did, kept in memory and written to the store every few seconds
 * in a few set-based statements: when each device was last heard from and over
 * which transport (at most once per ACTIVITY_REFRESH_MS per device), how far
 * each two-way device has pulled, and two-way counters as deltas added to
 * fleet-wide totals. Request handlers only touch a Map, so the ingest path gains
 * no write and no lock; a device heard from a thousand times between flushes
 * costs one row update. A crash loses at most the last interval of these
 * figures, never data.
 */
export class ActivityRecorder {
  readonly #db: Queryable;
  readonly #log: Logger;
  readonly #flushMs: number;
  readonly #refreshMs: number;
  readonly #idle = new WakeableSleep();
  #seen = new Map<string, Seen>();
  /** Sightings already recorded in the current refresh window (written or waiting for the flush); the window starts over every refreshMs. */
  #reported = new Map<string, Seen>();
  #windowStart = Date.now();
  #pulls = new Map<string, Pulled>();
  #counts = new Map<TwowayEvent, number>();

  constructor(options: { db: Queryable; logger: Logger; flushMs?: number; refreshMs?: number }) {
    this.#db = options.db;
    this.#log = options.logger;
    this.#flushMs = options.flushMs ?? ACTIVITY_FLUSH_MS;
    this.#refreshMs = options.refreshMs ?? ACTIVITY_REFRESH_MS;
  }

  /** A device was heard from: a batch, a control poll or ack, an MQTT connection. */
  seen(deviceId: string, transport: IngestTransport): void {
    const at = Date.now();
    if (at - this.#windowStart >= this.#refreshMs) {
      this.#reported = new Map();
      this.#windowStart = at;
    }
    if (this.#reported.get(deviceId)?.transport === transport) return;
    const entry = { at, transport };
    this.#reported.set(deviceId, entry);
    this.#seen.set(deviceId, entry);
  }

  /** A two-way push was answered (process counter and fleet-wide total). */
  push(answer: PushAnswerLike): void {
    countPush(answer);
    const outcome = pushOutcome(answer);
    if (outcome) this.#count(`push_${outcome}`, 1);
    if (answer.status === 'conflict') this.#count('conflicting_rows', answer.conflicts.length);
  }

  /** A two-way pull was answered: the device had everything up to `after` and now holds every whole bundle of the page. */
  pull(scope: string, source: string, after: bigint, answer: { bundles: readonly { bundle_seq: string; complete: boolean }[] }): void {
    countPull(answer);
    this.#count('pulls', 1);
    this.#count('pulled_bundles', answer.bundles.length);
    const whole = answer.bundles.filter((b) => b.complete).at(-1);
    const pulled = whole ? BigInt(whole.bundle_seq) : after;
    this.#pulls.set(`${scope}\u0000${source}`, { scope, source, after, pulled: pulled > after ? pulled : after, at: Date.now() });
  }

  snapshot(): void {
    countSnapshot();
    this.#count('snapshots', 1);
  }

  #count(event: TwowayEvent, n: number): void {
    if (n > 0) this.#counts.set(event, (this.#counts.get(event) ?? 0) + n);
  }

  /** Writes what was recorded since the last flush; on failure it is kept for the next one. */
  async flush(): Promise<void> {
    const seen = this.#seen;
    const pulls = this.#pulls;
    const counts = this.#counts;
    this.#seen = new Map();
    this.#pulls = new Map();
    this.#counts = new Map();
    try {
      await this.#write(seen, pulls, counts);
    } catch (error) {
      // Newer entries recorded meanwhile win; counts add up.
      for (const [id, entry] of seen) if (!this.#seen.has(id)) this.#seen.set(id, entry);
      for (const [key, entry] of pulls) if (!this.#pulls.has(key)) this.#pulls.set(key, entry);
      for (const [event, n] of counts) this.#count(event, n);
      throw error;
    }
  }

  async #write(seen: Map<string, Seen>, pulls: Map<string, Pulled>, counts: Map<TwowayEvent, number>): Promise<void> {
    // Sorted, so two processes flushing at once take row locks in the same order.
    if (seen.size > 0) {
      const entries = [...seen].sort(([a], [b]) => (a < b ? -1 : 1));
      await this.#db.query(
        `UPDATE devices AS d SET last_seen_at = v.at, last_transport = v.transport
           FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS v(id, at, transport)
          WHERE d.id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at <= v.at)`,
        [arrayParam(entries.map(([id]) => id)), arrayParam(entries.map(([, e]) => new Date(e.at).toISOString())), arrayParam(entries.map(([, e]) => e.transport))],
      );
    }
    if (pulls.size > 0) {
      const entries = [...pulls].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, e]) => e);
      // The newest observation wins, whichever process made it.
      await this.#db.query(
        `INSERT INTO sync_pull_watermarks AS w (scope, source, after_seq, pulled_seq, pulled_at)
         SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[], $5::timestamptz[])
         ON CONFLICT (scope, source) DO UPDATE SET after_seq = excluded.after_seq, pulled_seq = excluded.pulled_seq, pulled_at = excluded.pulled_at
         WHERE w.pulled_at <= excluded.pulled_at`,
        [arrayParam(entries.map((e) => e.scope)), arrayParam(entries.map((e) => e.source)), arrayParam(entries.map((e) => e.after.toString())), arrayParam(entries.map((e) => e.pulled.toString())), arrayParam(entries.map((e) => new Date(e.at).toISOString()))],
      );
    }
    if (counts.size > 0) {
      const entries = [...counts].sort(([a], [b]) => (a < b ? -1 : 1));
      await this.#db.query(
        `INSERT INTO syncline_counters AS c (name, value) SELECT * FROM unnest($1::text[], $2::bigint[])
         ON CONFLICT (name) DO UPDATE SET value = c.value + excluded.value`,
        [arrayParam(entries.map(([event]) => event)), arrayParam(entries.map(([, n]) => String(n)))],
      );
    }
  }

  /** Flushes every interval until the signal aborts, then once more so a clean stop loses nothing. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.#idle.sleep(this.#flushMs, signal);
      try {
        await this.flush();
      } catch (error) {
        this.#log.warn({ err: error }, 'could not write device activity; keeping it for the next flush');
      }
    }
  }
}

/** The fleet-wide two-way totals (every process's flushed counts). */
export async function twowayFleetTotals(db: Queryable): Promise<Record<TwowayEvent, number>> {
  const { rows } = await db.query<{ name: string; value: string }>('SELECT name, value::text AS value FROM syncline_counters WHERE name = ANY($1::text[])', [[...TWOWAY_EVENTS]]);
  const totals = Object.fromEntries(TWOWAY_EVENTS.map((event) => [event, 0])) as Record<TwowayEvent, number>;
  for (const row of rows) totals[row.name as TwowayEvent] = Number(row.value);
  return totals;
}
