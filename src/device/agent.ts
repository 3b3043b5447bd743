import pino, { type Logger } from 'pino';
import { SynclineError } from '../protocol/errors.js';
import type { Transport } from '../transport/transport.js';
import { agentStatus, type AgentStatus } from './agent-status.js';
import { CaptureWatch } from './capture/capture-watch.js';
import { DeviceLoop, type LoopPart, type PartTurn } from './device-loop.js';
import { ControlHandler } from './publisher/control-handler.js';
import { BetterSqlite3Driver } from './driver/better-sqlite3-driver.js';
import type { SqliteDriver } from './driver/sqlite-driver.js';
import { bindDevice, checkDeviceBinding, type DeviceIdentity } from './journal/device-binding.js';
import { readCursors } from './journal/cursors.js';
import { readSidecar, restoredFromBackup, sidecarPath, writeSidecar } from './journal/epoch-sidecar.js';
import { JournalReader } from './journal/journal-reader.js';
import { Publisher } from './publisher/publisher.js';
import { publisherOptions, type PublisherOptions } from './publisher/publisher-options.js';
import { listCursors } from './telemetry/telemetry-cursor.js';
import type { TelemetryPublisher } from './telemetry/telemetry-publisher.js';
import { startTelemetry } from './telemetry/telemetry-start.js';
import type { TelemetrySpec } from './telemetry/telemetry-table.js';
import type { BackgroundOptions, SharedSync } from './twoway/shared-sync.js';

/**
 * SQLite's page cache of the agent's connection, in KiB (SQLite's own default):
 * the agent reads the journal in one pass and deletes what was acked, so
 * better-sqlite3's 16 MB only kept a drain's pages resident, and after
 * `shrink_memory` freed them glibc kept most of them (after a 100k-row drain
 * glibc's main heap holds 10 MB instead of 17; drain rate unchanged).
 */
const CACHE_KIB = 2000;

export interface AgentOptions {
  dbPath: string;
  transport: Transport;
  logger?: Logger;
  publisher?: Partial<PublisherOptions>;
  /** Drain the journal, then resolve; reject when that is impossible (server unreachable, bad token, deadline). */
  once?: boolean;
  /** In once mode, give up after this long (ms). */
  onceDeadlineMs?: number;
  /** Capture only these tables (default: every user table, including ones created later). */
  tables?: readonly string[];
  /** Tables whose updates and deletes also journal the old row. */
  beforeImages?: readonly string[];
  /** How often the loop looks for new journal entries and schema changes besides the file's change hints (a commit wakes it at once). */
  pollIntervalMs?: number;
  busyTimeoutMs?: number;
  /** How often an HTTP agent asks for flow-control messages while the cloud has a table paused. */
  controlPollMs?: number;
  /** Append-only tables shipped by a cursor instead of triggers (no capture cost; inserts only). */
  telemetry?: readonly TelemetrySpec[];
  /** How often to log a one-line status at info level (0: never; default 60 s). */
  statusIntervalMs?: number;
  /** Called when the journal drained after shipping (the CLI releases the burst's memory then). */
  onDrained?: () => void;
  /** The device this run ships for; the file remembers it and refuses another one (device-binding.ts). */
  identity?: DeviceIdentity;
  /** Let another device take the file over: a new epoch with a fresh snapshot of every table. */
  rebindDevice?: boolean;
  /**
   * Two-way sync of the file's shared tables in this agent's loop (the file then
   * has one loop for its edge tables, telemetry and two-way sync): a SharedSync
   * opened on the same file, which the caller closes after run() ends. Not with `once`.
   */
  shared?: { sync: SharedSync } & BackgroundOptions;
}

export const DEFAULT_POLL_INTERVAL_MS = 200;
/** How often a running agent logs its one-line status at info level. */
export const DEFAULT_STATUS_INTERVAL_MS = 60_000;

/**
 * The device agent: owns one SQLite file that an app writes, keeps capture
 * installed, and publishes the journal. The loop runs on each change hint of
 * the file (its WAL watch), each settled delivery and every poll interval; each
 * run costs one schema_version read and one max(seq) read while idle, and the
 * journal is scanned only when it grew, a delivery finished or a partial batch
 * became due.
 */
export class Agent {
  readonly #opts: AgentOptions;
  readonly #log: Logger;
  readonly #stopper = new AbortController();
  #running: Promise<void> | undefined;
  #db: SqliteDriver | undefined;
  #open = false;
  #capture: CaptureWatch | undefined;
  #publisher: Publisher | undefined;
  #controls: ControlHandler | undefined;
  #lastStatus: AgentStatus | undefined;
  #telemetry: TelemetryPublisher | undefined;

  constructor(options: AgentOptions) {
    this.#opts = options;
    this.#log = options.logger ?? pino({ level: 'silent' });
  }

  run(signal?: AbortSignal): Promise<void> {
    if (this.#running) throw new SynclineError('invalid_config', 'this agent is already running', { db: this.#opts.dbPath });
    if (this.#opts.shared && this.#opts.once) throw new SynclineError('invalid_config', 'a drain (once) cannot run two-way sync in the same loop; call the SharedSync\'s sync() for that', { field: 'shared' });
    if (signal) signal.addEventListener('abort', () => this.#stopper.abort(), { once: true });
    if (signal?.aborted) this.#stopper.abort();
    this.#running = this.#run();
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopper.abort();
    await this.#running?.catch(() => {});
  }

  /** A snapshot for the CLI; after run() ends it is the state at shutdown. */
  async status(): Promise<AgentStatus> {
    if (this.#db && this.#open && this.#capture) {
      const status: AgentStatus = { ...(await agentStatus(this.#db, this.#opts.dbPath, this.#capture.epoch, true, this.#publisher?.inFlight ?? 0, this.#publisher?.stats)), paused: this.#controls?.paused ?? [] };
      if ((this.#opts.telemetry ?? []).length > 0) {
        status.telemetry = (await listCursors(this.#db)).map((c) => ({ table: c.table, time_column: c.timeColumn, acked_seq: c.seq, late_rows: c.lateRows, gap_rows: c.gapRows }));
        status.telemetry_rows_acked = this.#telemetry?.stats.rowsAcked ?? 0;
        status.telemetry_in_flight = this.#telemetry?.inFlight ?? 0;
        if (this.#telemetry?.stats.lastError && !status.last_error) status.last_error = this.#telemetry.stats.lastError;
      }
      return status;
    }
    return this.#lastStatus ?? { db: this.#opts.dbPath, journal_epoch: undefined, running: false, tables: [], pending_total: 0, in_flight: 0, quarantined: 0, batches_acked: 0, rows_acked: 0, retries: 0, epoch_rotations: 0 };
  }

  async #run(): Promise<void> {
    const db = BetterSqlite3Driver.open(this.#opts.dbPath, { cacheKib: CACHE_KIB, ...(this.#opts.busyTimeoutMs === undefined ? {} : { busyTimeoutMs: this.#opts.busyTimeoutMs }) });
    this.#db = db;
    this.#open = true;
    try {
      const capture = await this.#startCapture(db);
      // Flow control: the cloud may pause a table (it is buffered in the journal) and resume it later.
      const controls = await ControlHandler.open({
        db,
        transport: this.#opts.transport,
        epoch: () => capture.epoch,
        onResume: (table) => this.#publisher?.resetLane(table),
        logger: this.#log.child({ component: 'controls' }),
        ...(this.#opts.controlPollMs !== undefined ? { pollMs: this.#opts.controlPollMs } : {}),
      });
      this.#controls = controls;
      // Built before its parts: deliveries, control messages and the file's change hints wake it.
      const loop = new DeviceLoop({ logger: this.#log });
      // Controls from an ack (HTTP) or pushed (MQTT): applied, then every part gets a turn (a resume frees a table).
      const applyControls = (messages: readonly unknown[]) => void controls.handle(messages).then(() => loop.wake());
      const publisher = new Publisher({
        db,
        transport: this.#opts.transport,
        logger: this.#log.child({ component: 'publisher' }),
        options: publisherOptions(this.#opts.publisher, this.#opts.once),
        epoch: () => capture.epoch,
        rotateEpoch: (reason) => capture.rotateEpoch(reason),
        onProgress: () => this.#saveSidecar(db, capture.epoch),
        isPaused: (table) => controls.isPaused(table),
        onControls: applyControls,
        onSettled: () => loop.wake(),
      });
      this.#publisher = publisher;
      this.#opts.transport.onControl?.((message) => applyControls([message]));
      const once = this.#opts.once === true;
      const telemetry = await startTelemetry(db, this.#opts.telemetry ?? [], this.#opts.transport, publisherOptions(this.#opts.publisher, once), this.#opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS, this.#log.child({ component: 'telemetry' }), {
        isPaused: (table) => controls.isPaused(table),
        onControls: applyControls,
        once,
        onSettled: () => loop.wake(),
      });
      this.#telemetry = telemetry;
      // A failing telemetry table ends a running agent the way a fatal journal error does (neither part retries).
      loop.add(this.#edgePart(db, capture, publisher));
      loop.add(telemetry);
      // Commits to the file wake the loop at once; the parts' polls are only a safety net.
      const unwatch = db.watch(() => loop.wake());
      const twoWay = this.#joinTwoWay(loop, unwatch !== undefined);
      try {
        await loop.run(this.#stopper.signal);
      } finally {
        unwatch?.();
        this.#stopper.abort();
        await twoWay?.settled();
        await telemetry.stop();
        await publisher.stop();
        await controls.settled();
      }
    } finally {
      if (this.#capture) this.#lastStatus = { ...(await this.status()), running: false };
      this.#open = false;
      await db.close();
    }
  }

  #joinTwoWay(loop: DeviceLoop, hinted: boolean): { settled(): Promise<void> } | undefined {
    if (!this.#opts.shared) return undefined;
    const { sync, ...background } = this.#opts.shared;
    return sync.joinLoop(loop, { ...background, hinted }, this.#stopper.signal);
  }

  async #startCapture(db: SqliteDriver): Promise<CaptureWatch> {
    const capture = new CaptureWatch(db, {
      tables: this.#opts.tables,
      beforeImages: this.#opts.beforeImages,
      exclude: (this.#opts.telemetry ?? []).map((t) => t.table),
      logger: this.#log.child({ component: 'capture' }),
    });
    const report = await capture.ensure();
    this.#capture = capture;
    const restored = restoredFromBackup({ epoch: report.epoch, cursors: await readCursors(db, report.epoch) }, readSidecar(sidecarPath(this.#opts.dbPath)));
    if (restored) {
      this.#log.warn({ reason: restored }, 'the database looks restored from a backup: its journal went back in time; starting a new epoch so no change is mistaken for one the cloud already has');
      await capture.rotateEpoch(`restored from backup: ${restored}`);
    }
    if (this.#opts.identity && (await checkDeviceBinding(db, this.#opts.dbPath, this.#opts.identity, this.#opts.rebindDevice === true)) === 'rebind') {
      await capture.rotateEpoch('the file was rebound to another device');
      await bindDevice(db, this.#opts.identity);
      this.#log.warn({ db: this.#opts.dbPath }, 'the file now ships for this device; every table was snapshotted again so its mirror is complete');
    }
    await this.#saveSidecar(db, capture.epoch);
    this.#log.info({ db: this.#opts.dbPath, journal_epoch: capture.epoch, installed: report.installed }, 'capture ready');
    return capture;
  }

  async #saveSidecar(db: SqliteDriver, epoch: string): Promise<void> {
    try {
      writeSidecar(sidecarPath(this.#opts.dbPath), epoch, await readCursors(db, epoch));
    } catch (error) {
      this.#log.warn({ err: error }, 'could not write the epoch sidecar; restore detection is weaker until it can');
    }
  }

  /**
   * The edge publisher's part of the device loop: keeps capture current, asks
   * for flow-control messages, and pumps the journal when it grew, a delivery
   * settled or a partial batch became due; logs the status line; in once mode it
   * is done when the journal drained, and fails past the deadline.
   */
  #edgePart(db: SqliteDriver, capture: CaptureWatch, publisher: Publisher): LoopPart {
    const once = this.#opts.once === true;
    const poll = this.#opts.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
    const deadline = once && this.#opts.onceDeadlineMs !== undefined ? Date.now() + this.#opts.onceDeadlineMs : undefined;
    const reader = new JournalReader(db);
    const stop = this.#stopper.signal;
    const statusEvery = this.#opts.statusIntervalMs ?? DEFAULT_STATUS_INTERVAL_MS;
    let nextStatusAt = Date.now() + statusEvery;
    let seenSeq = -1;
    let pumpNow = true;
    let nextDueAt: number | undefined;
    // Something was pending since the journal last drained.
    let shipping = false;
    const turn = async (): Promise<PartTurn> => {
      await this.#refreshCapture(capture);
      this.#controls?.poll(stop);
      const maxSeq = await reader.maxSeq();
      if (publisher.takeSettled() || maxSeq !== seenSeq || (nextDueAt !== undefined && Date.now() >= nextDueAt)) pumpNow = true;
      seenSeq = maxSeq;
      if (pumpNow || once) {
        const result = await publisher.pump(once);
        nextDueAt = result.nextDueAt;
        pumpNow = result.more;
        if (once && result.drained) return { done: true };
        if (!result.drained) shipping = true;
        else if (shipping) {
          shipping = false;
          await this.#drained(db);
        }
      }
      if (publisher.fatal) throw publisher.fatal;
      if (statusEvery > 0 && Date.now() >= nextStatusAt) {
        nextStatusAt = Date.now() + statusEvery;
        await this.#logStatus();
      }
      if (deadline !== undefined && Date.now() > deadline) {
        const { lastError, retries, rowsAcked } = publisher.stats;
        const seconds = Math.round(this.#opts.onceDeadlineMs! / 1000);
        const why = lastError === undefined ? `could not drain the journal within ${seconds} s` : `the server could not be reached within ${seconds} s (${retries} retries, ${rowsAcked} rows shipped; last error: ${lastError})`;
        throw new SynclineError('transport_failed', why, { db: this.#opts.dbPath, ...publisher.stats });
      }
      // A long backlog is scanned again at once (after deliveries and timers had their turn).
      if (pumpNow) return { next: Date.now() };
      const timers = [Date.now() + poll, ...(statusEvery > 0 ? [nextStatusAt] : []), ...(nextDueAt !== undefined ? [nextDueAt] : [])];
      return { next: Math.min(...timers) };
    };
    return { name: 'edge', turn };
  }

  /**
   * The journal drained after a burst: SQLite's page cache for this connection
   * and the host's memory hook (the CLI collects the garbage of the burst) are
   * released, so an idle agent does not keep its drain's high-water memory.
   */
  async #drained(db: SqliteDriver): Promise<void> {
    try {
      await db.exec('PRAGMA shrink_memory');
    } catch (error) {
      this.#log.debug({ err: error }, 'could not shrink SQLite memory');
    }
    this.#opts.onDrained?.();
  }

  /** One info line a person can read in `journalctl`: what shipped, what waits, what went wrong. */
  async #logStatus(): Promise<void> {
    const s = await this.status();
    const paused = s.paused?.length ? `, ${s.paused.length} table(s) paused by the cloud` : '';
    this.#log.info(
      { pending_total: s.pending_total, rows_acked: s.rows_acked, batches_acked: s.batches_acked, retries: s.retries, quarantined: s.quarantined, in_flight: s.in_flight },
      `status: ${s.rows_acked} rows shipped in ${s.batches_acked} batches, ${s.pending_total} pending, ${s.retries} retries, ${s.quarantined} quarantined${paused}`,
    );
  }

  async #refreshCapture(capture: CaptureWatch): Promise<void> {
    try {
      const report = await capture.refresh();
      if (report && report.failed.length > 0) this.#log.warn({ failed: report.failed.map((f) => f.table) }, 'some tables could not be captured yet');
    } catch (error) {
      // Typically SQLITE_BUSY while the app holds a long write transaction; the next loop tries again.
      this.#log.warn({ err: error }, 'capture refresh failed; retrying on the next loop');
    }
  }
}
