import pino, { type Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { EventBuffer, type BufferedEvent } from './change-stream-buffer.js';
import { StreamCapture } from './change-stream-capture.js';
import type { ChangeEvent } from './change-stream-event.js';
import { streamSettings, type ChangeStreamOptions, type StreamSettings } from './change-stream-options.js';
import type { AckTracker } from './change-stream-progress.js';
import type { SnapshotReader } from './change-stream-snapshot.js';
import type { JournalSource } from './change-stream-source.js';
import { startStream, type StreamStart } from './change-stream-start.js';
import { setCheckpointRetention } from './checkpoint-retention.js';
import { CheckpointWriter, isBusy } from './checkpoint-writer.js';
import { BetterSqlite3Driver } from '../driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { WakeableSleep } from '../../protocol/wakeable-sleep.js';

/** Subscribes to the row changes of a SQLite file; see ChangeStream. Rejects on bad options and on a start position the journal no longer holds. */
export function changes(options: ChangeStreamOptions): Promise<ChangeStream> {
  return ChangeStream.open(options);
}

export type ChangeListener = (event: ChangeEvent) => void | Promise<void>;

/**
 * A subscription to the journal of one SQLite file: changes by this process, by
 * other processes, and made while no subscriber ran (from a checkpoint or `from`),
 * in commit order, rolled-back changes never (they never reach the journal).
 *
 * Consume it ONE way: `for await (const event of stream)` or `stream.on('change', fn)`.
 * Acknowledgement (with autoAck, the default): the iterator acknowledges an event
 * when the loop asks for the next one, i.e. after the loop body returned; leaving
 * the loop (break, throw) acknowledges nothing more, so call ack(event.seq) first
 * if the event in hand was handled. A 'change' listener's event is acknowledged
 * when the listener returns (or its promise resolves); the next event waits for
 * that. ack(seq) acknowledges explicitly (with autoAck: false, only it does).
 * The named checkpoint is written at most every checkpointIntervalMs and on close:
 * after close() a restart resumes exactly after the last acknowledged event; after
 * a crash it resumes after the last written one (use checkpointIntervalMs: 0 for
 * exactness at one small write transaction per ack).
 *
 * Latency: the journal is polled every pollIntervalMs (default 50 ms; one indexed
 * query when idle), so a caught-up subscriber sees a commit within that interval
 * plus the read.
 *
 * Slow subscribers: the stream reads only as much as its buffer holds
 * (maxBuffered), so a backlog is paced by the consumer. A consumer that took no
 * event during a whole poll interval while its buffer was full and more changes
 * waited is closed with subscriber_overflow. Writers never wait for subscribers
 * (they only append to the journal) and each stream reads on its own, so nothing
 * else slows down; a checkpointed consumer that is closed loses nothing and
 * resumes from its checkpoint.
 */
export class ChangeStream implements AsyncIterable<ChangeEvent> {
  /** Resolves when the stream has closed, with the error that closed it (undefined for close()). */
  readonly closed: Promise<Error | undefined>;
  /** The journal seq the bootstrap snapshot is consistent with; undefined without a snapshot. */
  readonly snapshotSeq: number | undefined;
  readonly #settings: StreamSettings;
  readonly #log: Logger;
  readonly #db: SqliteDriver;
  readonly #ownsDb: boolean;
  readonly #capture: StreamCapture;
  readonly #source: JournalSource;
  readonly #acks: AckTracker;
  readonly #checkpoint: CheckpointWriter;
  readonly #buffer = new EventBuffer((item) => this.#onTake(item));
  readonly #errorListeners: ((error: Error) => void)[] = [];
  #resolveClosed: (error: Error | undefined) => void = () => {};
  #snapshot: SnapshotReader | undefined;
  /** The read loop's wait between polls, cut short when the consumer makes room. */
  readonly #idle: WakeableSleep;
  readonly #stop = new AbortController();
  /** The read loop; close() waits for it before the connection goes. */
  #running: Promise<void> = Promise.resolve();
  #consumer: 'none' | 'iterator' | 'listener' = 'none';
  #inHand: BufferedEvent | undefined;
  #stall = { full: false, taken: 0 };
  #waitingForRoom = false;
  #closing: Promise<void> | undefined;
  #error: Error | undefined;

  private constructor(settings: StreamSettings, log: Logger, options: ChangeStreamOptions, db: SqliteDriver, ownsDb: boolean, capture: StreamCapture, start: StreamStart) {
    this.#settings = settings;
    this.#log = log;
    this.closed = new Promise((resolve) => (this.#resolveClosed = resolve));
    this.#idle = new WakeableSleep(options.clock);
    this.#db = db;
    this.#ownsDb = ownsDb;
    this.#capture = capture;
    this.#snapshot = start.snapshot;
    this.snapshotSeq = start.snapshotSeq;
    this.#source = start.source;
    this.#acks = start.acks;
    this.#checkpoint = new CheckpointWriter(db, settings.checkpoint, start.acks, settings.checkpointIntervalMs, log);
    this.#running = this.#run();
  }

  /** Installs capture where missing and fixes the start position, so configuration and expiry errors reject here. */
  static async open(options: ChangeStreamOptions): Promise<ChangeStream> {
    const settings = streamSettings(options);
    const log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'change-stream', checkpoint: settings.checkpoint });
    const ownsDb = typeof options.db === 'string';
    const db = typeof options.db === 'string' ? BetterSqlite3Driver.open(options.db) : options.db;
    try {
      const capture = new StreamCapture(db, settings.tables, log);
      await capture.ensure();
      if (options.retention) await setCheckpointRetention(db, options.retention);
      const start = await startStream(db, settings);
      return new ChangeStream(settings, log, options, db, ownsDb, capture, start);
    } catch (error) {
      if (ownsDb) await db.close();
      throw error;
    }
  }

  /** The highest seq acknowledged so far; undefined while a bootstrap snapshot is unacknowledged. */
  get acked(): number | undefined {
    return this.#acks.acked;
  }

  [Symbol.asyncIterator](): AsyncIterator<ChangeEvent> {
    this.#attach('iterator');
    return {
      next: () => this.#next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  on(event: 'change', listener: ChangeListener): this;
  on(event: 'error', listener: (error: Error) => void): this;
  on(event: 'change' | 'error', listener: ChangeListener | ((error: Error) => void)): this {
    if (event === 'error') {
      this.#errorListeners.push(listener as (error: Error) => void);
    } else {
      this.#attach('listener');
      void this.#deliverTo(listener as ChangeListener);
    }
    return this;
  }

  /** Acknowledges every delivered event with a seq <= `seq`; after close it changes nothing. */
  ack(seq: number): void {
    this.#acks.ack(seq);
    this.#flushSoon();
  }

  /** Stops reading, writes the checkpoint, ends the consumer's loop. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  #attach(kind: 'iterator' | 'listener'): void {
    if (this.#consumer !== 'none') throw new SynclineError('invalid_config', 'a change stream has one consumer: iterate it or listen to it, once', {});
    this.#consumer = kind;
  }

  async #next(): Promise<IteratorResult<ChangeEvent>> {
    if (this.#inHand && this.#settings.autoAck) this.#ackItem(this.#inHand);
    this.#inHand = undefined;
    const taken = this.#buffer.take();
    const item = taken instanceof Promise ? await taken : taken;
    if (!item) {
      if (this.#error) throw this.#error;
      return { done: true, value: undefined };
    }
    this.#inHand = item;
    return { done: false, value: item.event };
  }

  async #deliverTo(listener: ChangeListener): Promise<void> {
    for (;;) {
      const taken = this.#buffer.take();
      const item = taken instanceof Promise ? await taken : taken;
      if (!item) return;
      try {
        await listener(item.event);
      } catch (error) {
        this.#fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (this.#settings.autoAck) this.#ackItem(item);
    }
  }

  #ackItem(item: BufferedEvent): void {
    if (item.ackSeq === undefined) return;
    this.#acks.ack(item.ackSeq);
    this.#flushSoon();
  }

  /** Reads whenever a poll interval ends or the consumer made room, until the stream closes. */
  async #run(): Promise<void> {
    let delayMs = 0;
    for (;;) {
      await this.#idle.sleep(delayMs, this.#stop.signal);
      if (this.#buffer.closed || this.#stop.signal.aborted) return;
      delayMs = await this.#tick();
    }
  }

  /**
   * One read; returns how long to wait before the next. On a driver the app
   * shares, the driver runs it after the app's open transaction, never inside it,
   * so what it reads is committed.
   */
  async #tick(): Promise<number> {
    const poll = this.#settings.pollIntervalMs;
    try {
      await this.#capture.refresh();
      if (this.#stop.signal.aborted) return poll;
      if (this.#consumer !== 'none' && this.#stall.full && this.#buffer.taken === this.#stall.taken) {
        const max = this.#settings.maxBuffered;
        this.#fail(new SynclineError('subscriber_overflow', `the subscriber took no event for ${poll} ms while ${max} waited in its buffer and more followed`, { checkpoint: this.#settings.checkpoint, max_buffered: max }));
        return poll;
      }
      const more = await this.#fill();
      if (this.#stop.signal.aborted) return poll;
      this.#waitingForRoom = more && this.#buffer.size >= this.#settings.maxBuffered;
      this.#stall = { full: this.#waitingForRoom, taken: this.#buffer.taken };
      await this.#flush(false);
      return more && !this.#waitingForRoom ? 0 : poll;
    } catch (error) {
      if (!isBusy(error)) this.#fail(error as Error);
      else this.#log.debug({ err: error }, 'database busy; polling again');
      return poll;
    }
  }

  /** Moves what fits from the snapshot, then the journal, into the buffer; true when more is waiting. */
  async #fill(): Promise<boolean> {
    let room = this.#settings.maxBuffered - this.#buffer.size;
    const snapshot = this.#snapshot;
    if (snapshot) {
      if (room <= 0) return true;
      const events = await snapshot.read(room);
      const last = events.length - 1;
      this.#buffer.push(events.map((event, i) => ({ event, ackSeq: snapshot.done && i === last ? snapshot.seq : undefined })));
      if (!snapshot.done) return true;
      this.#snapshot = undefined;
      room -= events.length;
    }
    if (room <= 0) return this.#source.pending();
    const read = await this.#source.read(room, Date.now());
    this.#buffer.push(read.events);
    return read.more;
  }

  #onTake(item: BufferedEvent): void {
    this.#acks.delivered(item);
    if (this.#waitingForRoom && this.#buffer.size <= this.#settings.maxBuffered / 2) {
      this.#waitingForRoom = false;
      this.#idle.wake();
    }
  }

  #flush(force: boolean): Promise<void> {
    if (this.#buffer.closed) return Promise.resolve();
    return this.#checkpoint.flush(this.#source.position, this.#settled(), force);
  }

  /** A flush after an ack, off the consumer's path; a failure other than a busy database closes the stream. */
  #flushSoon(): void {
    this.#flush(false).catch((error: unknown) => this.#fail(error instanceof Error ? error : new Error(String(error))));
  }

  /** Nothing the stream read waits undelivered (in the buffer or in the snapshot). */
  #settled(): boolean {
    return this.#buffer.size === 0 && !this.#snapshot;
  }

  #fail(error: Error): void {
    if (this.#error || this.#buffer.closed) return;
    this.#error = error;
    this.#log.warn({ err: error }, 'change stream closed by an error');
    for (const listener of this.#errorListeners) listener(error);
    void this.close();
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    await this.#running;
    await this.#snapshot?.close();
    // Before the buffer is dropped: events still in it are unacknowledged and hold the checkpoint back.
    await this.#checkpoint.close(this.#source.position, this.#settled());
    this.#buffer.close();
    if (this.#ownsDb) await this.#db.close();
    this.#resolveClosed(this.#error);
  }
}
