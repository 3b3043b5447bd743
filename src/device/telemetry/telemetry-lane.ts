import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import type { Clock } from '../../protocol/wakeable-sleep.js';
import { isTransportError, type Transport } from '../../transport/transport.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import type { PublisherOptions } from '../publisher/publisher-options.js';
import { advanceTelemetryCursor, readCursor, recordTimeCheck, rewindCursor, type TelemetryCursor } from './telemetry-cursor.js';
import { TelemetryReader, type TelemetryRead } from './telemetry-reader.js';
import type { TelemetryTable } from './telemetry-table.js';

export interface TelemetryStats {
  batchesAcked: number;
  rowsAcked: number;
  retries: number;
  lastError: string | undefined;
}

/** How one batch's delivery ended. `stopped`: aborted, or given up because the batch before it failed (the window is read again). */
type Outcome = 'acked' | 'refused' | 'too_large' | 'stopped';

/** A batch on its way, in read order. */
interface InFlight {
  read: TelemetryRead;
  settled: Promise<Outcome>;
  outcome?: Outcome;
}

export interface TelemetryLaneDeps {
  db: SqliteDriver;
  transport: Transport;
  table: TelemetryTable;
  options: PublisherOptions;
  /** Batches of this table in flight at once (a window). */
  maxInFlight: number;
  pollIntervalMs: number;
  /** The run's signal: aborting it ends every delivery (their batches stay unacked, the cursor where it is). */
  signal: AbortSignal;
  log: Logger;
  stats: TelemetryStats;
  clock: Clock;
  isPaused?: (table: string) => boolean;
  onControls?: (controls: readonly unknown[]) => void;
  /** A delivery settled: the lane wants a turn. */
  wake: () => void;
}

/** What a turn asks of the loop: come back at `next` (or on a wake only when undefined), or nothing is left (`once`). */
export interface LaneTurn {
  next?: number;
  done?: boolean;
}

/**
 * One telemetry table's batches: up to `maxInFlight` in flight at once (once the
 * cloud's first ack says it honours `after_seq`; one at a time before), each
 * read from where the one before it ends and sent with `after_seq` naming that
 * batch's last seq, so the cloud stores them in order whatever order they arrive
 * in (it answers telemetry_too_early to one that overtook its predecessor, and
 * the lane sends it again once the predecessor is acked). The durable cursor
 * moves only over the acked prefix of the window: acks arriving out of order
 * never move it past a batch not acked, so a crash with several in flight
 * re-reads from the first unacked batch and the cloud skips by seq what it holds.
 * A batch is sent when it is full, when its first row waited `flushIntervalMs`,
 * or at once in `once` mode; retryable failures back off, others stop the table.
 */
export class TelemetryLane {
  readonly #d: TelemetryLaneDeps;
  readonly #reader: TelemetryReader;
  readonly #window: InFlight[] = [];
  /** Aborts the window's deliveries when it is read again (a batch in it failed). */
  #windowAbort = new AbortController();
  #limit: number;
  #pendingSince: number | undefined;
  /** The cloud said it orders batches by `after_seq` (BatchAck.in_order); until then one batch at a time. */
  #inOrder = false;

  constructor(deps: TelemetryLaneDeps) {
    this.#d = deps;
    this.#reader = new TelemetryReader(deps.db, deps.table);
    this.#limit = deps.options.maxBatchRows;
  }

  get table(): string {
    return this.#d.table.table;
  }

  /** Batches of the window still waiting for their answer. */
  get inFlight(): number {
    return this.#window.filter((w) => w.outcome === undefined).length;
  }

  /** Does what is due now; resolves with when to come back. Rejects in `once` mode when the table cannot be shipped. */
  async turn(once: boolean): Promise<LaneTurn> {
    const { db, table, options, log, signal } = this.#d;
    const now = () => this.#d.clock.now();
    await this.#commitAcked();
    const head = this.#window[0];
    if (head?.outcome !== undefined) {
      // The first unacked batch failed: what follows it was read from its end, so it is all read again.
      await this.#dropWindow();
      if (head.outcome === 'too_large') {
        this.#limit = Math.max(1, Math.ceil(head.read.batch.rows.length / 2));
        return { next: now() };
      }
      if (head.outcome === 'refused') {
        if (once) throw new SynclineError('transport_failed', `telemetry table ${table.table} could not be shipped: ${this.#d.stats.lastError ?? 'stopped'}`, { table: table.table });
        return { done: true };
      }
      return signal.aborted ? { done: true } : { next: now() };
    }
    if (signal.aborted) return { done: true };
    if (this.#d.isPaused?.(table.table)) {
      // A drain (`once`) ends here like the row publisher's: what is left waits for the resume.
      if (once && this.#window.length === 0) return { done: true };
      return this.#window.length > 0 ? {} : { next: now() + this.#d.pollIntervalMs };
    }
    while (this.#window.length < (this.#inOrder ? this.#d.maxInFlight : 1)) {
      const last = this.#window[this.#window.length - 1];
      // Rows behind a batch that took fewer than it could go out after it is acked, with their own flush interval.
      if (last && last.read.batch.rows.length < this.#limit) break;
      const stored = (await readCursor(db, table.table))!;
      const from: TelemetryCursor = last ? { ...stored, posTime: last.read.end.posTime, posRowid: last.read.end.posRowid, seq: last.read.end.seq } : stored;
      const look = await this.#reader.look(from, this.#limit);
      if (look.checked) {
        await recordTimeCheck(db, table.table, look.checked.upTo, look.checked.late);
        if (look.checked.late > 0) log.warn({ late_rows: look.checked.late, time_column: table.timeColumn }, 'rows arrived with a time at or before rows already shipped (or no time); the time column must only grow, these rows are not shipped');
      }
      if (look.rewindTo !== undefined) {
        // Only from the acked cursor: ahead of it, "nothing past the position" is the window's own rows.
        if (last) break;
        log.warn({ from: String(stored.posRowid), to: String(look.rewindTo) }, 'the newest shipped rows were deleted: SQLite reuses their rowids, so the cursor moves back (seqs keep growing)');
        await rewindCursor(db, table.table, look.rewindTo);
        continue;
      }
      const read = look.read;
      if (!read) {
        if (last) break;
        if (once) return { done: true };
        this.#pendingSince = undefined;
        return { next: now() + this.#d.pollIntervalMs };
      }
      this.#pendingSince ??= now();
      const due = once || read.batch.rows.length >= this.#limit || now() - this.#pendingSince >= options.flushIntervalMs;
      if (!due) {
        if (last) break;
        return { next: Math.min(now() + this.#d.pollIntervalMs, this.#pendingSince + options.flushIntervalMs) };
      }
      if (last) read.batch.after_seq = last.read.end.seq;
      this.#pendingSince = undefined;
      this.#send(read, last);
    }
    // Deliveries wake the loop when they settle.
    return {};
  }

  /** Aborts nothing: waits for the window's deliveries (they end when the run's signal aborts) and records what was acked. */
  async settle(): Promise<void> {
    await Promise.allSettled(this.#window.map((w) => w.settled));
    await this.#commitAcked();
  }

  #send(read: TelemetryRead, before: InFlight | undefined): void {
    const signal = this.#windowAbort.signal;
    const entry: InFlight = { read, settled: Promise.resolve('stopped') };
    entry.settled = this.#deliver(read, before?.settled, signal)
      .catch((error: unknown) => {
        this.#d.stats.lastError = error instanceof Error ? error.message : String(error);
        return 'refused' as const;
      })
      .then((outcome) => {
        entry.outcome = outcome;
        this.#d.wake();
        return outcome;
      });
    this.#window.push(entry);
  }

  /** Moves the cursor over the acked prefix of the window, in one statement. */
  async #commitAcked(): Promise<void> {
    let last: InFlight | undefined;
    let gapRows = 0;
    while (this.#window[0]?.outcome === 'acked') {
      last = this.#window.shift()!;
      gapRows += last.read.end.gapRows;
    }
    if (!last) return;
    await advanceTelemetryCursor(this.#d.db, this.#d.table.table, { ...last.read.end, gapRows });
    if (gapRows > 0) this.#d.log.warn({ rows: gapRows, up_to_rowid: String(last.read.end.posRowid) }, 'rowids skipped before shipping: rows deleted before they were shipped (or ids the app chose)');
    this.#limit = this.#d.options.maxBatchRows;
  }

  /** Ends every delivery of the window and forgets it; the next turn reads from the acked cursor. */
  async #dropWindow(): Promise<void> {
    this.#windowAbort.abort();
    await Promise.allSettled(this.#window.map((w) => w.settled));
    this.#window.length = 0;
    this.#windowAbort = new AbortController();
  }

  /**
   * Sends one batch until it is acked or refused for good; a batch over the byte
   * limit is read again smaller. One sent ahead of an unacked batch that arrives
   * first is sent again once that batch is acked.
   */
  async #deliver(read: TelemetryRead, before: Promise<Outcome> | undefined, windowSignal: AbortSignal): Promise<Outcome> {
    const { transport, options, log, stats } = this.#d;
    const json = JSON.stringify(read.batch);
    if (Buffer.byteLength(json) > options.maxBatchBytes && read.batch.rows.length > 1) {
      read.tooLarge = true;
      return 'too_large';
    }
    const signal = AbortSignal.any([this.#d.signal, windowSignal]);
    let attempt = 0;
    for (;;) {
      if (signal.aborted) return 'stopped';
      try {
        const ack = await transport.sendTelemetryBatch!(read.batch, json, signal);
        if (ack.controls && ack.controls.length > 0) this.#d.onControls?.(ack.controls);
        if (ack.in_order === true) this.#inOrder = true;
        stats.batchesAcked += 1;
        stats.rowsAcked += read.batch.rows.length;
        log.debug({ batch_id: ack.batch_id, rows: read.batch.rows.length, last_seq: ack.last_seq }, 'telemetry batch acked');
        return 'acked';
      } catch (error) {
        if (signal.aborted) return 'stopped';
        if (before && isTransportError(error) && error.code === 'telemetry_too_early') {
          // It overtook the batch before it: once that one is acked, the cloud takes this one.
          if ((await before) !== 'acked') return 'stopped';
          before = undefined;
          continue;
        }
        stats.lastError = error instanceof Error ? error.message : String(error);
        if (isTransportError(error) && error.status === 413 && read.batch.rows.length > 1) return 'too_large';
        if (isTransportError(error) && !error.retryable) {
          log.error({ err: error }, 'telemetry batch refused; this table stops until the agent restarts');
          return 'refused';
        }
        attempt += 1;
        stats.retries += 1;
        if (attempt >= options.maxAttempts) return 'refused';
        const wait = isTransportError(error) && error.retryAfterMs !== undefined ? error.retryAfterMs : backoffDelay(attempt, options.retryBaseMs, options.retryMaxMs);
        log.warn({ err: error, attempt, wait_ms: wait }, 'telemetry batch failed; retrying');
        await sleep(wait, signal, this.#d.clock);
      }
    }
  }
}
