import pino, { type Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import type { WireRow, WireRowBatch } from '../../protocol/batch.js';
import type { ReceivedBatchAck } from '../../protocol/control.js';
import { SynclineError, isSynclineError } from '../../protocol/errors.js';
import { encodeValue } from '../../protocol/values.js';
import { isTransportError, type EncodedRowBatch, type Transport } from '../../transport/transport.js';
import { backoffDelay, sleep } from '../../protocol/backoff.js';
import { systemClock, type Clock } from '../../protocol/wakeable-sleep.js';
import { buildRowBatch, envelopeBytes, nextBatchSize, rowBatchJson, rowBytes, splitRowBatch, wireRow, type BatchHead, type SizedRow } from './batching.js';
import { readCursors } from '../journal/cursors.js';
import { sharedTableNames } from '../twoway/shared-state.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { JournalReader, type RawJournalEntry } from '../journal/journal-reader.js';
import { scanJournal, scanTable, type Lane } from './publisher-scan.js';
import { recordAck, recordRejection } from './publisher-commit.js';
import type { PublisherOptions, PublisherStats } from './publisher-options.js';
import { classifySendError } from './send-outcome.js';

export interface PublisherDeps {
  db: SqliteDriver;
  transport: Transport;
  logger?: Logger;
  options: PublisherOptions;
  /** The current journal epoch. */
  epoch: () => string;
  /** Starts a new epoch (with a fresh snapshot) and returns it; called when the cloud answers stale_epoch. */
  rotateEpoch: (reason: string) => Promise<string>;
  /** Called after every ack or quarantine is committed (the agent writes its epoch sidecar). */
  onProgress?: () => void | Promise<void>;
  random?: () => number;
  now?: () => number;
  /** The clock of the retry waits (tests pass a fake one). */
  clock?: Clock;
  /** A delivery settled (or the publisher stopped for good): the device loop should pump again. */
  onSettled?: () => void;
  /** Flow control: the cloud paused this table; it is not sent until resumed. */
  isPaused?: (table: string) => boolean;
  /** Flow control: controls that came back on an ack (HTTP), unread (the control handler reads each). */
  onControls?: (controls: readonly unknown[]) => void;
}

export interface PumpResult {
  /** Tables with entries not yet sent. */
  pendingTables: number;
  inFlight: number;
  /** Nothing unacked is left anywhere and nothing is in flight. */
  drained: boolean;
  /** When the oldest unsent partial batch becomes due; undefined when none waits. */
  nextDueAt: number | undefined;
  /** Call pump again right away: the scan stopped early and can get further. */
  more: boolean;
}

/** A batch on its way; encoded once, so a retry sends the same bytes. */
interface Outgoing {
  batch: WireRowBatch;
  /** `JSON.stringify(batch)` when the build rendered it already (split halves have none). */
  json?: string;
  encoded?: EncodedRowBatch;
}

/** The ack commit of a delivery's last sent batch, when it still runs behind the next send. */
interface CommitChain {
  pending?: Promise<void>;
}

/** A table's next batch, read, built and encoded while the batch before it is in flight. */
interface Prepared extends Outgoing {
  /** More of the table's entries follow it (it stopped at a limit or a schema change). */
  full: boolean;
  /** The byte limit it was cut to (a split may lower the limit meanwhile). */
  maxBytes: number;
}

/** Epoch rotations in a row without an ack in between before we stop: the cloud and the device disagree in a way rotating cannot fix. */
const MAX_ROTATIONS_WITHOUT_ACK = 3;
const SCAN_BUDGET_FACTOR = 8;
const MIN_BATCH_BYTES = 1024;

/**
 * Ships the journal to the cloud: one in-flight batch per table at most (so a
 * table's order is never broken), several tables at once, every failure handled
 * without dropping a row (see send-outcome.ts). `pump()` does one scan and
 * starts deliveries; the agent decides when to call it. A delivery prepares the
 * table's next batch while the current one is in flight and sends it as soon as
 * the current one is acked, so reading and encoding overlap the round trip.
 */
export class Publisher {
  readonly #db: SqliteDriver;
  readonly #transport: Transport;
  readonly #log: Logger;
  readonly #opts: PublisherOptions;
  readonly #deps: PublisherDeps;
  readonly #reader: JournalReader;
  readonly #abort = new AbortController();
  readonly #deliveries = new Set<Promise<void>>();
  readonly #now: () => number;
  #lanes = new Map<string, Lane>();
  #maxBatchBytes: number;
  #fatal: Error | undefined;
  #rotation: string | undefined;
  #rotationsWithoutAck = 0;
  /** Due tables the last pump left waiting for a delivery slot; as many deliveries end instead of sending their own next batch. */
  #slotsWanted = 0;
  readonly #clock: Clock;
  /** A delivery settled since the last takeSettled(): the pump has something to do. */
  #settled = false;
  readonly stats: PublisherStats = { batchesAcked: 0, rowsAcked: 0, batchesQuarantined: 0, retries: 0, epochRotations: 0, lastError: undefined };

  constructor(deps: PublisherDeps) {
    this.#deps = deps;
    this.#db = deps.db;
    this.#transport = deps.transport;
    this.#log = deps.logger ?? pino({ level: 'silent' });
    this.#opts = deps.options;
    this.#reader = new JournalReader(deps.db);
    this.#now = deps.now ?? Date.now;
    this.#maxBatchBytes = deps.options.maxBatchBytes;
    this.#clock = deps.clock ?? systemClock;
  }

  /** Set when the publisher stopped for good (bad credential, retry budget spent); the agent surfaces it. */
  get fatal(): Error | undefined {
    return this.#fatal;
  }

  get inFlight(): number {
    return this.#deliveries.size;
  }

  /** Scans the journal once and starts the deliveries that are due. `force` sends partial batches now (once mode, shutdown drain). */
  async pump(force = false): Promise<PumpResult> {
    const idleResult = (drained: boolean): PumpResult => ({ pendingTables: 0, inFlight: this.inFlight, drained, nextDueAt: undefined, more: false });
    if (this.#fatal || this.#abort.signal.aborted) return idleResult(false);
    if (this.#rotation !== undefined) {
      if (this.inFlight > 0) return idleResult(false);
      await this.#rotate(this.#rotation);
      if (this.#fatal) return idleResult(false);
    }
    await this.#syncLanes();
    const limits = { maxRows: this.#opts.maxBatchRows, maxBytes: this.#maxBatchBytes };
    const scan = await scanJournal(this.#reader, this.#lanes, limits, this.#opts.maxBatchRows * SCAN_BUDGET_FACTOR);
    const now = this.#now();
    let nextDueAt: number | undefined;
    let pending = 0;
    const waiting = [...scan.collected].sort((a, b) => a[1][0]!.seq - b[1][0]!.seq);
    let started = 0;
    let slotsWanted = 0;
    for (const [lane, entries] of waiting) {
      // A table first seen in this scan was not checked in #syncLanes yet.
      if (this.#deps.isPaused?.(lane.table)) {
        lane.paused = true;
        continue;
      }
      lane.pendingSince ??= now;
      // A scan that ran out of budget would start from the same place next time, pinned by
      // these tables: send what they have so the next scan starts further on.
      const due = force || !scan.complete || scan.full.has(lane) || now - lane.pendingSince >= this.#opts.flushIntervalMs;
      if (!due) {
        pending += 1;
        const at = lane.pendingSince + this.#opts.flushIntervalMs;
        nextDueAt = nextDueAt === undefined ? at : Math.min(nextDueAt, at);
        continue;
      }
      // Due but every delivery slot is taken: the next settled delivery wakes the agent to pump again.
      if (this.inFlight >= this.#opts.maxInFlight) {
        pending += 1;
        slotsWanted += 1;
        continue;
      }
      await this.#startDelivery(lane, entries, scan.full.has(lane), force);
      started += 1;
    }
    this.#slotsWanted = slotsWanted;
    if (scan.complete) {
      for (const lane of this.#lanes.values()) if (!lane.busy && !scan.collected.has(lane)) lane.pendingSince = undefined;
    }
    const drained = scan.complete && !scan.rescan && scan.collected.size === 0 && this.inFlight === 0;
    // Scan again at once only when that can get further; otherwise a settling delivery wakes the agent.
    const more = scan.rescan || (!scan.complete && (started > 0 || scan.collected.size === 0));
    return { pendingTables: pending + this.inFlight, inFlight: this.inFlight, drained, nextDueAt, more };
  }

  /** True when a delivery settled since the last call: a pump can start more. */
  takeSettled(): boolean {
    const settled = this.#settled;
    this.#settled = false;
    return settled;
  }

  #settle(): void {
    this.#settled = true;
    this.#deps.onSettled?.();
  }

  /** Flow control resumed `table`: forget its lane so the next scan starts again from its cursor (which a resume may have moved). */
  resetLane(table: string): void {
    const lane = this.#lanes.get(table);
    if (lane && !lane.busy) this.#lanes.delete(table);
    this.#settle();
  }

  /** Aborts in-flight requests and waits for their deliveries to wind down; unacked batches stay in the journal. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled([...this.#deliveries]);
  }

  async #syncLanes(): Promise<void> {
    for (const [table, acked] of await readCursors(this.#db, this.#deps.epoch())) {
      const lane = this.#lanes.get(table);
      if (!lane) this.#lanes.set(table, { table, acked, floor: acked, busy: false, pendingSince: undefined });
      else if (!lane.busy && acked > lane.acked) {
        lane.acked = acked;
        lane.floor = Math.max(lane.floor, acked);
      }
    }
    for (const table of await sharedTableNames(this.#db)) {
      const lane = this.#lanes.get(table);
      if (lane) lane.twoWay = true;
      else this.#lanes.set(table, { table, acked: 0, floor: 0, busy: false, pendingSince: undefined, twoWay: true });
    }
    const isPaused = this.#deps.isPaused;
    if (isPaused) for (const lane of this.#lanes.values()) lane.paused = isPaused(lane.table);
  }

  async #rotate(reason: string): Promise<void> {
    this.#rotationsWithoutAck += 1;
    if (this.#rotationsWithoutAck > MAX_ROTATIONS_WITHOUT_ACK) {
      this.#fail(new SynclineError('transport_failed', `the cloud keeps refusing the journal epoch (${reason}) even after ${MAX_ROTATIONS_WITHOUT_ACK} new epochs`, {}));
      return;
    }
    await this.#deps.rotateEpoch(reason);
    this.stats.epochRotations += 1;
    this.#lanes = new Map();
    this.#rotation = undefined;
    await this.#deps.onProgress?.();
  }

  #fail(error: Error): void {
    if (!this.#fatal) {
      this.#fatal = error;
      // The caller reports the error (the CLI in one line); the stack is for debugging.
      this.#log.debug({ err: error }, 'publisher stopped');
    }
    this.#settle();
  }

  async #startDelivery(lane: Lane, entries: RawJournalEntry[], more: boolean, force: boolean): Promise<void> {
    let first: Outgoing;
    try {
      first = this.#buildBatch(lane, entries);
    } catch (error) {
      if (isSynclineError(error) && error.code === 'journal_corrupt') {
        await this.#quarantineEntry(lane, entries[0]!, error);
        return;
      }
      throw error;
    }
    lane.busy = true;
    const full = more || first.batch.rows.length < entries.length;
    // Entries left behind this batch have waited as long as it did; they go out as soon as it is acked.
    if (!full) lane.pendingSince = undefined;
    const delivery = this.#deliver(lane, first, full, force).finally(() => {
      lane.busy = false;
      // The freed slot serves one of the tables waiting for one.
      this.#slotsWanted = Math.max(0, this.#slotsWanted - 1);
      this.#deliveries.delete(delivery);
      this.#settle();
    });
    this.#deliveries.add(delivery);
  }

  /** Decodes entries until the batch is full; rows past the cut are left for the next batch. */
  #buildBatch(lane: Lane, entries: RawJournalEntry[]): Outgoing & { json: string } {
    const schema = this.#reader.schemaOf(entries[0]!);
    const head: BatchHead = { batchId: uuidv7(), epoch: this.#deps.epoch(), table: lane.table, key: schema.key, schemaHash: schema.hash, columns: schema.columns };
    const envelope = envelopeBytes(head);
    const limits = { maxRows: this.#opts.maxBatchRows, maxBytes: this.#maxBatchBytes };
    const rows: WireRow[] = [];
    const rowJsons: string[] = [];
    const sized: SizedRow[] = [];
    let bytes = envelope;
    for (const entry of entries) {
      if (rows.length >= limits.maxRows || (rows.length > 0 && bytes > limits.maxBytes)) break;
      let decoded;
      try {
        decoded = this.#reader.decode(entry);
      } catch (error) {
        // Send the good rows before a corrupt entry; the entry itself is quarantined when it comes first.
        if (rows.length > 0 && isSynclineError(error) && error.code === 'journal_corrupt') break;
        throw error instanceof SynclineError ? error.withContext({ seq: entry.seq }) : error;
      }
      const row = wireRow(entry.seq, entry.op, decoded.pk, decoded.row);
      const json = JSON.stringify(row);
      const size = rowBytes(json);
      rows.push(row);
      rowJsons.push(json);
      sized.push({ schemaId: entry.schemaId, bytes: size });
      bytes += size;
    }
    const count = nextBatchSize(sized, limits, envelope);
    const batch = buildRowBatch(head, rows.slice(0, count));
    return { batch, json: rowBatchJson(batch, rowJsons.slice(0, count)) };
  }

  /**
   * Sends `first`, then the table's following batches for as long as they would
   * be due anyway: while one batch is in flight the next is prepared from its
   * last_seq on, and it goes out only once the one before it has passed (acked
   * or quarantined), so the table's order and its single in-flight batch hold.
   */
  async #deliver(lane: Lane, first: Outgoing, firstFull: boolean, force: boolean): Promise<void> {
    let current = first;
    let full = firstFull;
    const commits: CommitChain = {};
    try {
      for (;;) {
        // After a batch that took every entry seen, only a forced drain sends what turns up next at once.
        const ahead = full || force ? this.#prepareNext(lane, current.batch.last_seq) : Promise.resolve(undefined);
        // The lookahead reads the journal: it must be over before stop() lets the agent close the database.
        const passed = await this.#send(lane, current, commits).finally(() => ahead);
        const next = await ahead;
        if (!passed || !next || !this.#follows(lane, next, force)) return;
        // It holds every entry the lookahead saw; later ones start their own flush interval when a scan finds them.
        if (!next.full) lane.pendingSince = undefined;
        current = next;
        full = next.full;
      }
    } finally {
      await this.#settleCommit(lane, commits);
    }
  }

  /**
   * Waits for the ack commit still running behind a sent batch. One that failed
   * leaves the table's cursor where it was: its entries stay in the journal and go
   * out again (the cloud answers duplicate) unless a later ack's commit, which
   * moves the cursor past them too, lands.
   */
  async #settleCommit(lane: Lane, commits: CommitChain): Promise<void> {
    const pending = commits.pending;
    commits.pending = undefined;
    try {
      await pending;
    } catch (error) {
      this.stats.lastError = error instanceof Error ? error.message : String(error);
      this.#log.warn({ table: lane.table, err: error }, 'could not record an ack; its batch goes out again');
    }
  }

  /** Never rejects: a lookahead that fails is dropped, and the next scan does the work again and handles what went wrong. */
  async #prepareNext(lane: Lane, afterSeq: number): Promise<Prepared | undefined> {
    const maxBytes = this.#maxBatchBytes;
    const signal = this.#abort.signal;
    try {
      const scan = await scanTable(this.#reader, lane.table, afterSeq, { maxRows: this.#opts.maxBatchRows, maxBytes }, this.#opts.maxBatchRows * SCAN_BUDGET_FACTOR, signal);
      if (scan.entries.length === 0 || signal.aborted) return undefined;
      const built = this.#buildBatch(lane, scan.entries);
      const encoded = await this.#transport.encodeRowBatch(built.batch, built.json);
      return { ...built, encoded, full: scan.full || built.batch.rows.length < scan.entries.length, maxBytes };
    } catch (error) {
      this.#log.debug({ table: lane.table, err: error }, 'could not prepare the next batch ahead; the next scan will');
      return undefined;
    }
  }

  /**
   * Whether `next` goes out now, as the next pump would have sent it. When not,
   * it is dropped and the lane freed: pump then decides with the whole picture
   * (pauses, the flush interval, other tables waiting for a slot).
   */
  #follows(lane: Lane, next: Prepared, force: boolean): boolean {
    if (this.#abort.signal.aborted || this.#fatal || this.#rotation !== undefined || this.#deps.isPaused?.(lane.table)) return false;
    // A split lowered the byte limit since it was cut.
    if (next.maxBytes !== this.#maxBatchBytes) return false;
    // Take turns: this slot goes to a table that waits for one.
    if (this.#slotsWanted > 0) return false;
    const waited = lane.pendingSince !== undefined && this.#now() - lane.pendingSince >= this.#opts.flushIntervalMs;
    return force || next.full || waited;
  }

  /**
   * Sends until `first` has passed, whole or in parts. False when the delivery
   * must end instead: aborted, fatal, a rotation, or controls came back on an ack
   * (they may pause this table, so they are applied before it sends again).
   */
  async #send(lane: Lane, first: Outgoing, commits: CommitChain): Promise<boolean> {
    const queue = [first];
    let controls = false;
    let attempt = 0;
    const signal = this.#abort.signal;
    while (queue.length > 0 && !signal.aborted && !this.#fatal && this.#rotation === undefined) {
      const outgoing = queue[0]!;
      const batch = outgoing.batch;
      try {
        outgoing.encoded ??= await this.#transport.encodeRowBatch(batch, outgoing.json);
        const ack = await this.#transport.sendRowBatch(outgoing.encoded, signal);
        if (ack.batch_id !== batch.batch_id) throw new SynclineError('transport_failed', `ack names batch ${ack.batch_id}, expected ${batch.batch_id}`, { table: lane.table });
        // The ack before this one is recorded first (cursor and sidecar move in order); if that failed, this one's
        // commit covers the earlier entries too.
        await this.#settleCommit(lane, commits);
        if (queue.length === 1 && !ack.controls?.length) {
          // The last part of a batch, with nothing for the agent to apply first: its commit (cursor, prune,
          // sidecar) runs while the table's next batch is already on its way.
          commits.pending = this.#commitAck(lane, batch, ack).then(() => undefined);
          commits.pending.catch(() => undefined);
        } else {
          controls = (await this.#commitAck(lane, batch, ack)) || controls;
        }
        queue.shift();
        // Said once when it happens, so an operator reading the log sees the outage end, not only begin.
        if (attempt > 0) this.#log.info({ table: lane.table, batch_id: batch.batch_id, failed_attempts: attempt }, `the server answers again after ${attempt} failed attempt${attempt === 1 ? '' : 's'}; shipping resumed`);
        attempt = 0;
        continue;
      } catch (error) {
        if (signal.aborted) return false;
        // Whatever follows (a quarantine, a rotation, a retry) comes after the earlier ack is recorded.
        await this.#settleCommit(lane, commits);
        const outcome = classifySendError(error, batch.rows.length);
        const message = error instanceof Error ? error.message : String(error);
        this.stats.lastError = message;
        const context = { table: lane.table, batch_id: batch.batch_id, first_seq: batch.first_seq, last_seq: batch.last_seq, rows: batch.rows.length };
        switch (outcome) {
          case 'fatal': {
            const status = isTransportError(error) ? error.status : undefined;
            const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : 'transport_failed';
            // Said once: the transport's message may carry its own hint already (MQTT's refusals do).
            const hint = (status === 401 || status === 403) && !/\(check /.test(message) ? ' (check the device token)' : '';
            this.#fail(new SynclineError(code, `the server refused the device: ${message}${hint}`, context, { cause: error }));
            return false;
          }
          case 'rotate':
            this.#log.warn({ ...context, err: error }, 'the cloud follows a newer journal epoch; starting a new one');
            this.#rotation = message;
            return false;
          case 'split':
          case 'bisect':
            if (outcome === 'split') this.#maxBatchBytes = Math.max(MIN_BATCH_BYTES, Math.min(this.#maxBatchBytes, Buffer.byteLength(JSON.stringify(batch)) >> 1));
            this.#log.warn({ ...context, reason: message }, outcome === 'split' ? 'batch too large; splitting it' : 'row rejected; halving the batch to isolate it');
            queue.splice(0, 1, ...splitRowBatch(batch, uuidv7).map((half) => ({ batch: half })));
            continue;
          case 'quarantine':
            await this.#quarantine(lane, batch, isTransportError(error) ? (error.code ?? `http_${error.status}`) : 'rejected', message);
            queue.shift();
            continue;
          case 'retry': {
            attempt += 1;
            this.stats.retries += 1;
            if (attempt >= this.#opts.maxAttempts) {
              this.#fail(new SynclineError('transport_failed', `gave up on batch after ${attempt} attempts: ${message}`, { ...context, attempts: attempt }, { cause: error }));
              return false;
            }
            const wait = Math.max(backoffDelay(attempt, this.#opts.retryBaseMs, this.#opts.retryMaxMs, this.#deps.random), Math.min(isTransportError(error) ? (error.retryAfterMs ?? 0) : 0, this.#opts.retryMaxMs));
            this.#log.warn({ ...context, attempt, retry_in_ms: wait, reason: message }, 'send failed; retrying the same batch');
            await sleep(wait, signal, this.#clock);
          }
        }
      }
    }
    return queue.length === 0 && !controls;
  }

  /** True when controls came back on the ack. */
  async #commitAck(lane: Lane, batch: WireRowBatch, ack: ReceivedBatchAck): Promise<boolean> {
    await recordAck(this.#db, lane.table, batch.last_seq, batch.journal_epoch);
    this.#passed(lane, batch.last_seq);
    this.#rotationsWithoutAck = 0;
    this.stats.batchesAcked += 1;
    this.stats.rowsAcked += batch.rows.length;
    this.#log.debug({ table: lane.table, batch_id: batch.batch_id, last_seq: batch.last_seq, status: ack.status, lineage_id: ack.lineage_id }, 'batch acked');
    await this.#deps.onProgress?.();
    if (!ack.controls || ack.controls.length === 0) return false;
    this.#deps.onControls?.(ack.controls);
    return true;
  }

  async #quarantine(lane: Lane, batch: WireRowBatch, code: string, message: string): Promise<void> {
    const record = { table: lane.table, batchId: batch.batch_id, firstSeq: batch.first_seq, lastSeq: batch.last_seq, code, message, payload: JSON.stringify(batch) };
    await recordRejection(this.#db, record, batch.journal_epoch);
    this.#passed(lane, batch.last_seq);
    this.stats.batchesQuarantined += 1;
    this.#log.error({ table: lane.table, batch_id: batch.batch_id, first_seq: batch.first_seq, last_seq: batch.last_seq, code, reason: message }, 'batch rejected by the cloud; quarantined');
    await this.#deps.onProgress?.();
  }

  /** An entry that cannot be decoded cannot be sent either; it is set aside like a rejected batch so the table moves on. */
  async #quarantineEntry(lane: Lane, entry: RawJournalEntry, error: SynclineError): Promise<void> {
    const record = { table: lane.table, batchId: uuidv7(), firstSeq: entry.seq, lastSeq: entry.seq, code: error.code, message: error.message, payload: JSON.stringify({ ...entry, values: entry.values.map(encodeValue) }) };
    await recordRejection(this.#db, record, this.#deps.epoch());
    this.#passed(lane, entry.seq);
    this.stats.batchesQuarantined += 1;
    this.#log.error({ table: lane.table, seq: entry.seq, err: error }, 'journal entry cannot be decoded; quarantined');
    await this.#deps.onProgress?.();
  }

  #passed(lane: Lane, seq: number): void {
    lane.acked = Math.max(lane.acked, seq);
    lane.floor = Math.max(lane.floor, lane.acked);
  }
}
