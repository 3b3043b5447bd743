import pino, { type Logger } from 'pino';
import type { ControlMessage } from '../../protocol/control.js';
import { SynclineError } from '../../protocol/errors.js';
import { isTransportError, type Transport } from '../../transport/transport.js';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { systemClock, WakeableSleep, type Clock } from '../../protocol/wakeable-sleep.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import type { PublisherOptions } from '../publisher/publisher-options.js';
import { advanceTelemetryCursor, readCursor, recordTimeCheck, rewindCursor } from './telemetry-cursor.js';
import { TelemetryReader, type TelemetryLook, type TelemetryRead } from './telemetry-reader.js';
import type { TelemetryTable } from './telemetry-table.js';

export interface TelemetryPublisherOptions {
  db: SqliteDriver;
  transport: Transport;
  tables: readonly TelemetryTable[];
  options: PublisherOptions;
  pollIntervalMs: number;
  logger?: Logger;
  /** Flow control: a table the cloud paused is not sent (its rows wait in the table, the cursor stays) until it is resumed. */
  isPaused?: (table: string) => boolean;
  /** Controls that came back on an ack (HTTP): a pause must reach the device even when only telemetry is sent. */
  onControls?: (controls: readonly ControlMessage[]) => void;
  /** The clock of the loops' waits and flush deadlines (tests pass a fake one). */
  clock?: Clock;
}

export interface TelemetryStats {
  batchesAcked: number;
  rowsAcked: number;
  retries: number;
  lastError: string | undefined;
}

/**
 * Ships telemetry tables: per table one loop that reads past the cursor, sends
 * one batch at a time and moves the cursor on the cloud's ack only. A batch is
 * sent when it is full, when its first row waited `flushIntervalMs`, or at once
 * in `once` mode; retryable failures back off, others stop the table (the error
 * is kept in the status; nothing moves, so nothing is lost).
 */
export class TelemetryPublisher {
  readonly #o: TelemetryPublisherOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  /** Each table loop's idle wait; wake() ends them all. */
  readonly #idle = new Set<WakeableSleep>();
  readonly stats: TelemetryStats = { batchesAcked: 0, rowsAcked: 0, retries: 0, lastError: undefined };

  constructor(options: TelemetryPublisherOptions) {
    this.#o = options;
    this.#log = options.logger ?? pino({ level: 'silent' });
    this.#clock = options.clock ?? systemClock;
    if (options.tables.length > 0 && !options.transport.sendTelemetryBatch) {
      throw new SynclineError('invalid_config', 'this transport cannot send telemetry batches', { field: 'telemetry' });
    }
  }

  /** Runs every table's loop; in `once` mode resolves when each has nothing left, and rejects on the first table that cannot ship. */
  async run(signal: AbortSignal, once: boolean): Promise<void> {
    await Promise.all(this.#o.tables.map((t) => this.#runTable(t, signal, once)));
  }

  /** Ends the tables' idle waits (the agent's WAL change hint): rows may have arrived. */
  wake(): void {
    for (const idle of this.#idle) idle.wake();
  }

  async #runTable(table: TelemetryTable, signal: AbortSignal, once: boolean): Promise<void> {
    const { db, options } = this.#o;
    const reader = new TelemetryReader(db, table);
    const log = this.#log.child({ table: table.table });
    let pendingSince: number | undefined;
    let limit = options.maxBatchRows;
    // The next full batch, read while the one before it was in flight (from where that one ends).
    let prefetched: TelemetryLook | undefined;
    const idle = new WakeableSleep(this.#clock);
    this.#idle.add(idle);
    const now = () => this.#clock.now();
    while (!signal.aborted) {
      if (this.#o.isPaused?.(table.table)) {
        // A drain (`once`) ends here like the row publisher's: what is left waits for the resume.
        if (once) return;
        prefetched = undefined;
        await idle.sleep(this.#o.pollIntervalMs, signal);
        continue;
      }
      const cursor = (await readCursor(db, table.table))!;
      const look = prefetched ?? (await reader.look(cursor, limit));
      prefetched = undefined;
      if (look.checked) {
        await recordTimeCheck(db, table.table, look.checked.upTo, look.checked.late);
        if (look.checked.late > 0) log.warn({ late_rows: look.checked.late, time_column: table.timeColumn }, 'rows arrived with a time at or before rows already shipped (or no time); the time column must only grow, these rows are not shipped');
      }
      if (look.rewindTo !== undefined) {
        log.warn({ from: String(cursor.posRowid), to: String(look.rewindTo) }, 'the newest shipped rows were deleted: SQLite reuses their rowids, so the cursor moves back (seqs keep growing)');
        await rewindCursor(db, table.table, look.rewindTo);
        continue;
      }
      const read = look.read;
      if (!read) {
        if (once) return;
        pendingSince = undefined;
        await idle.sleep(this.#o.pollIntervalMs, signal);
        continue;
      }
      pendingSince ??= now();
      const due = once || read.batch.rows.length >= limit || now() - pendingSince >= options.flushIntervalMs;
      if (!due) {
        await idle.sleepUntil(Math.min(now() + this.#o.pollIntervalMs, pendingSince + options.flushIntervalMs), signal);
        continue;
      }
      const sending = this.#deliver(table, read, signal, log);
      // Its request is on its way: read the next batch meanwhile, as if this one were acked
      // (from the stored cursor, whose late-row check this loop just recorded).
      // A look records nothing itself, so a prefetch is simply dropped when the batch fails.
      const ahead =
        read.batch.rows.length >= limit && !read.tooLarge
          ? readCursor(db, table.table).then((stored) => reader.look({ ...stored!, posTime: read.end.posTime, posRowid: read.end.posRowid, seq: read.end.seq }, limit))
          : undefined;
      // Awaited after the send; until then a failure must not count as unhandled.
      ahead?.catch(() => undefined);
      const outcome = await sending;
      const next = await ahead;
      if (outcome === 'acked' && next?.read && next.rewindTo === undefined) prefetched = next;
      if (outcome === 'too_large') {
        limit = Math.max(1, Math.ceil(read.batch.rows.length / 2));
        continue;
      }
      if (outcome === 'refused') {
        if (once) throw new SynclineError('transport_failed', `telemetry table ${table.table} could not be shipped: ${this.stats.lastError ?? 'stopped'}`, { table: table.table });
        return;
      }
      limit = options.maxBatchRows;
      pendingSince = undefined;
    }
  }

  /** Sends one batch until it is acked or refused for good; a batch over the byte limit is read again smaller. */
  async #deliver(table: TelemetryTable, read: TelemetryRead, signal: AbortSignal, log: Logger): Promise<'acked' | 'refused' | 'too_large'> {
    const { transport, db, options } = this.#o;
    let attempt = 0;
    const json = JSON.stringify(read.batch);
    if (Buffer.byteLength(json) > options.maxBatchBytes && read.batch.rows.length > 1) {
      read.tooLarge = true;
      return 'too_large';
    }
    for (;;) {
      if (signal.aborted) return 'acked';
      try {
        const ack = await transport.sendTelemetryBatch!(read.batch, json, signal);
        await advanceTelemetryCursor(db, table.table, read.end);
        if (ack.controls && ack.controls.length > 0) this.#o.onControls?.(ack.controls);
        this.stats.batchesAcked += 1;
        this.stats.rowsAcked += read.batch.rows.length;
        if (read.end.gapRows > 0) log.warn({ rows: read.end.gapRows, up_to_rowid: String(read.end.posRowid) }, 'rowids skipped before shipping: rows deleted before they were shipped (or ids the app chose)');
        log.debug({ batch_id: ack.batch_id, rows: read.batch.rows.length, last_seq: ack.last_seq }, 'telemetry batch acked');
        return 'acked';
      } catch (error) {
        if (signal.aborted) return 'acked';
        this.stats.lastError = error instanceof Error ? error.message : String(error);
        if (isTransportError(error) && error.status === 413 && read.batch.rows.length > 1) return 'too_large';
        if (isTransportError(error) && !error.retryable) {
          log.error({ err: error }, 'telemetry batch refused; this table stops until the agent restarts');
          return 'refused';
        }
        attempt += 1;
        this.stats.retries += 1;
        if (attempt >= options.maxAttempts) return 'refused';
        const wait = isTransportError(error) && error.retryAfterMs !== undefined ? error.retryAfterMs : backoffDelay(attempt, options.retryBaseMs, options.retryMaxMs);
        log.warn({ err: error, attempt, wait_ms: wait }, 'telemetry batch failed; retrying');
        await sleep(wait, signal, this.#clock);
      }
    }
  }
}
