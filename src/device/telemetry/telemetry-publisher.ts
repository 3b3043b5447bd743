import pino, { type Logger } from 'pino';
import type { ControlMessage } from '../../protocol/control.js';
import { SynclineError } from '../../protocol/errors.js';
import { isTransportError, type Transport } from '../../transport/transport.js';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { systemClock, type Clock } from '../../protocol/wakeable-sleep.js';
import type { LoopPart, PartTurn } from '../device-loop.js';
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
  /** The clock of the retry waits and flush deadlines (tests pass a fake one). */
  clock?: Clock;
  /** Drain: send partial batches at once and be done when every table has nothing left. */
  once?: boolean;
  /** A send settled: the device loop gives the table its next turn. */
  onSettled?: () => void;
}

export interface TelemetryStats {
  batchesAcked: number;
  rowsAcked: number;
  retries: number;
  lastError: string | undefined;
}

/** One table's shipping state between the loop's turns. */
interface TableRun {
  table: TelemetryTable;
  reader: TelemetryReader;
  log: Logger;
  limit: number;
  pendingSince: number | undefined;
  /** The next full batch, read while the one before it was in flight (from where that one ends). */
  prefetched: TelemetryLook | undefined;
  /** The batch on its way; the table gets no turn until it settles. */
  sending: Promise<void> | undefined;
  /** Nothing more to do in this run: drained (`once`) or refused for good. */
  done: boolean;
  /** A failure of a finished send, thrown by the next turn (it ends the run). */
  failure: unknown;
}

/**
 * Ships telemetry tables as a part of the device loop: on each turn every table
 * that has no batch in flight reads past its cursor and sends one batch when it
 * is full, when its first row waited `flushIntervalMs`, or at once in `once`
 * mode; the cursor moves on the cloud's ack only, and a settled send wakes the
 * loop. Retryable failures back off, others stop the table (the error is kept
 * in the status; nothing moves, so nothing is lost).
 */
export class TelemetryPublisher implements LoopPart {
  readonly name = 'telemetry';
  readonly #o: TelemetryPublisherOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #runs: TableRun[];
  readonly #abort = new AbortController();
  readonly stats: TelemetryStats = { batchesAcked: 0, rowsAcked: 0, retries: 0, lastError: undefined };

  constructor(options: TelemetryPublisherOptions) {
    this.#o = options;
    this.#log = options.logger ?? pino({ level: 'silent' });
    this.#clock = options.clock ?? systemClock;
    if (options.tables.length > 0 && !options.transport.sendTelemetryBatch) {
      throw new SynclineError('invalid_config', 'this transport cannot send telemetry batches', { field: 'telemetry' });
    }
    this.#runs = options.tables.map((table) => ({
      table,
      reader: new TelemetryReader(options.db, table),
      log: this.#log.child({ table: table.table }),
      limit: options.options.maxBatchRows,
      pendingSince: undefined,
      prefetched: undefined,
      sending: undefined,
      done: false,
      failure: undefined,
    }));
  }

  /** Gives every idle table its turn; in `once` mode done when each has nothing left, and throws for the first table that cannot ship. */
  async turn(): Promise<PartTurn> {
    let next: number | undefined;
    for (const run of this.#runs) {
      if (run.failure !== undefined) throw run.failure;
      if (run.done || run.sending || this.#abort.signal.aborted) continue;
      const at = await this.#turnTable(run);
      if (at !== undefined) next = Math.min(next ?? at, at);
    }
    return { next, done: this.#runs.every((r) => r.done) };
  }

  /** Aborts the batches in flight and waits for them to wind down; their cursors stay where the last ack left them. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#runs.map((r) => r.sending));
  }

  /** When the table wants its next turn; undefined while a batch is in flight (its settling wakes the loop) or when it is done. */
  async #turnTable(run: TableRun): Promise<number | undefined> {
    const { db, options } = this.#o;
    const { table, reader, log } = run;
    const once = this.#o.once === true;
    const now = () => this.#clock.now();
    for (;;) {
      if (this.#o.isPaused?.(table.table)) {
        // A drain (`once`) ends here like the row publisher's: what is left waits for the resume.
        if (once) run.done = true;
        run.prefetched = undefined;
        return once ? undefined : now() + this.#o.pollIntervalMs;
      }
      const cursor = (await readCursor(db, table.table))!;
      const look = run.prefetched ?? (await reader.look(cursor, run.limit));
      run.prefetched = undefined;
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
        run.pendingSince = undefined;
        if (once) run.done = true;
        return once ? undefined : now() + this.#o.pollIntervalMs;
      }
      run.pendingSince ??= now();
      const due = once || read.batch.rows.length >= run.limit || now() - run.pendingSince >= options.flushIntervalMs;
      if (!due) return Math.min(now() + this.#o.pollIntervalMs, run.pendingSince + options.flushIntervalMs);
      run.sending = this.#send(run, read)
        .catch((error: unknown) => {
          run.failure = error;
        })
        .finally(() => {
          run.sending = undefined;
          this.#o.onSettled?.();
        });
      return undefined;
    }
  }

  /** Sends `read` and, while it is in flight, reads the table's next full batch from where it ends. */
  async #send(run: TableRun, read: TelemetryRead): Promise<void> {
    const { db } = this.#o;
    const { table, reader, log } = run;
    const signal = this.#abort.signal;
    const sending = this.#deliver(table, read, signal, log);
    // Its request is on its way: read the next batch meanwhile, as if this one were acked
    // (from the stored cursor, whose late-row check the turn just recorded).
    // A look records nothing itself, so a prefetch is simply dropped when the batch fails.
    const ahead =
      read.batch.rows.length >= run.limit && !read.tooLarge
        ? readCursor(db, table.table).then((stored) => reader.look({ ...stored!, posTime: read.end.posTime, posRowid: read.end.posRowid, seq: read.end.seq }, run.limit))
        : undefined;
    // Awaited after the send; until then a failure must not count as unhandled.
    ahead?.catch(() => undefined);
    const outcome = await sending;
    const next = await ahead;
    if (outcome === 'acked' && next?.read && next.rewindTo === undefined) run.prefetched = next;
    if (outcome === 'too_large') {
      run.limit = Math.max(1, Math.ceil(read.batch.rows.length / 2));
      return;
    }
    if (outcome === 'refused') {
      if (this.#o.once === true) throw new SynclineError('transport_failed', `telemetry table ${table.table} could not be shipped: ${this.stats.lastError ?? 'stopped'}`, { table: table.table });
      run.done = true;
      return;
    }
    run.limit = this.#o.options.maxBatchRows;
    run.pendingSince = undefined;
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
