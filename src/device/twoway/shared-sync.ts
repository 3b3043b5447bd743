import pino, { type Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { SharedDefaults, type PushAnswer, type SharedConfigAnswer, type SharedTable, type WireBundle } from '../../protocol/shared-sync.js';
import { SHARED_WAKE_USERNAME, sharedWakeTopic } from '../../protocol/topics.js';
import type { SqlValue } from '../../protocol/values.js';
import { bundleAnnouncementSchema } from '../../protocol/sync-answers.js';
import { readAnswer } from '../../transport/http-util.js';
import { SharedHttpClient } from '../../transport/shared-http-client.js';
import { isTransportError } from '../../transport/transport.js';
import { backoffDelay } from '../../protocol/backoff.js';
import { systemClock, type Clock } from '../../protocol/wakeable-sleep.js';
import { DeviceLoop, type LoopPart, type PartTurn } from '../device-loop.js';
import type { DeviceDb } from '../driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { readConflicts, type ConflictRecord } from './conflict-log.js';
import type { ConflictResolver } from './resolve-conflict.js';
import { installSharedCapture } from './shared-capture.js';
import { SharedEngine, type ChangeSet, type Outbox } from './shared-engine.js';
import type { PendingView } from './pending-view.js';
import { SharedStateKeys as K } from './shared-schema.js';
import { ensureSharedSchema } from './shared-state.js';
import { readState, writeState } from '../journal/journal-state.js';

export interface SharedSyncOptions {
  /**
   * The app's SQLite file (Node, through better-sqlite3); created when missing (the declared tables are created
   * in it on first contact). Give either this or `driver`.
   */
  path?: string;
  /** An open database through any SqliteDriver adapter (a browser's SQLite WASM, say); closed by close(). */
  driver?: SqliteDriver;
  serverUrl: string;
  /** A JWT whose `sub` (or tenant claim) is the scope, or a function returning a fresh one. */
  token: string | (() => string | Promise<string>);
  /** This device's source id; by default one is generated once and kept in the file. Must match the token's source claim when it has one. */
  source?: string;
  /** An app rule for conflicts; cases it returns undefined for go to the table's policy. */
  resolver?: ConflictResolver;
  logger?: Logger;
  /** Rows per upload chunk, per pull page and per snapshot chunk. */
  chunkRows?: number;
  fetch?: typeof globalThis.fetch;
  /** Wake-ups over MQTT (the server's embedded broker, signed in with the JWT) instead of the HTTP event stream. */
  mqttUrl?: string;
  /** Told after each snapshot chunk a hydration wrote, so a front end can show its progress (the CLI's progress line). */
  onHydrationProgress?: (progress: { chunks: number; rows: number }) => void;
  /** The clock of the background loop's waits (tests pass a fake one). */
  clock?: Clock;
}

/** What remote changes did to the local tables; `full` after a hydration replaced them. */
export interface ChangeEvent {
  cause: 'pull' | 'hydrate' | 'conflict';
  tables: string[];
  keys: Record<string, SqlValue[][]>;
  full: boolean;
}

export interface PushReport {
  rows: number;
  bundleSeq: string | null;
  conflicts: number;
}

export interface PullReport {
  bundles: number;
  rows: number;
}

export interface SyncReport {
  hydrated: PullReport | null;
  push: PushReport;
  pull: PullReport;
}

/** How the background loop runs (start()). */
export interface BackgroundOptions {
  /** Sync at least this often, besides the server's announcements and local commits (default 30 s). */
  pollMs?: number;
  /** How often local commits are looked for when the driver gives no change hints. */
  watchMs?: number;
  /** The longest backoff after failed syncs (default 30 s). */
  retryMaxMs?: number;
}

const MAX_PUSH_ROUNDS = 8;

/** How often the file's commit counters are read for local writes to push when the driver cannot tell when it changes. */
const DEFAULT_WATCH_MS = 10;
/** How often the counters are read when the driver gives change hints: a safety net for a missed hint. */
const QUIET_WATCH_MS = 1000;

/**
 * Two-way sync of the shared tables in one SQLite file: the app writes its
 * tables as usual; pending changes are pushed as bundles, remote bundles pulled
 * and rebased under pending ones, conflicts settled by each table's policy (or
 * the app's resolver) and logged. Every method is safe to call at any time: they
 * run one at a time, and each resumes whatever a crash interrupted.
 *
 * All of it goes through the async SqliteDriver, so the same class runs over
 * better-sqlite3 in Node and over SQLite WASM in a browser.
 */
export class SharedSync {
  readonly driver: SqliteDriver;
  readonly #database: DeviceDb | undefined;
  readonly #client: SharedHttpClient;
  readonly #options: SharedSyncOptions;
  readonly #log: Logger;
  readonly #listeners = new Set<(event: ChangeEvent) => void>();
  #engine: SharedEngine | undefined;
  #source: string;
  #queue: Promise<unknown> = Promise.resolve();
  #loop: { stop: AbortController; done: Promise<void> } | undefined;
  /** The source id the file kept before open() replaced it (the token's sid or the source option named another). */
  replacedSource: string | undefined;

  private constructor(driver: SqliteDriver, database: DeviceDb | undefined, options: SharedSyncOptions, source: string) {
    this.driver = driver;
    this.#database = database;
    this.#options = options;
    this.#source = source;
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ component: 'shared-sync', source });
    this.#client = new SharedHttpClient({ serverUrl: options.serverUrl, token: options.token, source, ...(options.fetch ? { fetch: options.fetch } : {}) });
  }

  /**
   * Opens the file and installs capture. Online, the server's declarations are
   * fetched (and kept in the file); offline, the kept ones are used, and a device
   * that never reached the server starts capturing at its first contact, pushing
   * whatever the app wrote until then.
   */
  static async open(options: SharedSyncOptions): Promise<SharedSync> {
    let driver = options.driver;
    let database: DeviceDb | undefined;
    if (!driver) {
      if (options.path === undefined) throw new SynclineError('invalid_config', 'SharedSync.open needs a path or a driver', { field: 'path' });
      // Loaded only here, so a browser bundle that passes its own driver never reaches better-sqlite3.
      const { BetterSqlite3Driver } = await import('../driver/better-sqlite3-driver.js');
      const node = BetterSqlite3Driver.open(options.path, { create: true });
      driver = node;
      database = node.database;
    }
    try {
      await ensureSharedSchema(driver);
      const stored = await readState(driver, K.source);
      // The token's sid claim names the device when there is one: the server refuses any other source for it.
      const claimed = options.source ?? sourceClaim(typeof options.token === 'string' ? options.token : await options.token());
      const source = claimed ?? stored ?? uuidv7();
      await writeState(driver, K.source, source);
      const sync = new SharedSync(driver, database, options, source);
      if (stored !== undefined && stored !== source) {
        sync.replacedSource = stored;
        sync.#log.warn({ previous_source: stored }, 'the file kept another source id than this device runs as; it now uses the new one');
      }
      const kept = await readState(driver, K.config);
      if (kept) await sync.#install(JSON.parse(kept) as SharedConfigAnswer);
      await sync.#contact().catch((error: unknown) => {
        if (!isTransportError(error) || !error.retryable) throw error;
        sync.#log.info({ err: error.message }, 'server unreachable; working offline');
      });
      return sync;
    } catch (error) {
      await driver.close();
      throw error;
    }
  }

  /**
   * The file's better-sqlite3 connection, for Node apps that write their tables on it (opened with `path`).
   * Its writes are captured like any other; a browser app writes through its own driver.
   */
  get db(): DeviceDb {
    if (!this.#database) throw new SynclineError('invalid_config', 'this SharedSync was opened over a driver; write through that driver');
    return this.#database;
  }

  get #clock(): Clock {
    return this.#options.clock ?? systemClock;
  }

  get source(): string {
    return this.#source;
  }

  /** Shared tables as declared by the server; empty before the first contact. */
  get tables(): SharedTable[] {
    return [...(this.#engine?.tables.values() ?? [])].map((t) => t.declaration);
  }

  get watermark(): bigint {
    return this.#engine?.watermark ?? 0n;
  }

  /** Rows with changes the server has not committed yet. */
  async pending(): Promise<number> {
    return (await this.#engine?.pendingCount()) ?? 0;
  }

  /** The changes not yet frozen into a push, per table and key (quote() rendering), each with the row it started from and its latest write time. */
  async pendingChanges(): Promise<PendingView> {
    return (await this.#engine?.pendingView()) ?? new Map();
  }

  conflicts(afterId = 0): Promise<ConflictRecord[]> {
    return readConflicts(this.driver, afterId);
  }

  /** Called after remote changes are applied, with the tables and keys they changed. */
  onChange(listener: (event: ChangeEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hydrates a device that never was (or fell behind the server's history), pushes pending changes, then pulls. */
  sync(): Promise<SyncReport> {
    return this.#serial(async () => {
      const engine = await this.#ready();
      const hydrated = engine.hydrated ? null : await this.#hydrate(engine);
      const push = await this.#push(engine);
      const pull = await this.#pull(engine);
      return { hydrated, push, pull };
    });
  }

  pushPending(): Promise<PushReport> {
    return this.#serial(async () => this.#push(await this.#ready()));
  }

  pull(): Promise<PullReport> {
    return this.#serial(async () => {
      const engine = await this.#ready();
      if (await engine.outbox()) await this.#push(engine);
      return this.#pull(engine);
    });
  }

  hydrate(): Promise<PullReport> {
    return this.#serial(async () => this.#hydrate(await this.#ready()));
  }

  /**
   * Syncs in the background: at once, whenever the server announces a bundle
   * (event stream), and every `pollMs` regardless, so it converges even without
   * the event stream; pushes whenever the app commits to the file (on the
   * driver's change hint, or checked every `watchMs`). After a failed sync it
   * retries with backoff up to `retryMaxMs` (default 30 s). All of it is one
   * device loop (device-loop.ts): the sync and the server's wake-ups are its parts.
   */
  start(options: BackgroundOptions = {}): void {
    if (this.#loop) return;
    const stop = new AbortController();
    const loop = new DeviceLoop({ clock: this.#clock, logger: this.#log });
    // Commits to the file (any connection) wake the loop; without hints the sync part looks every `watchMs`.
    const unwatch = this.driver.watch?.(() => loop.wake());
    const joined = this.joinLoop(loop, { ...options, hinted: unwatch !== undefined }, stop.signal);
    const done = loop.run(stop.signal).finally(async () => {
      unwatch?.();
      await joined.settled();
    });
    this.#loop = { stop, done };
  }

  /**
   * Adds the background sync's parts to a device loop: start()'s own, or the
   * agent's when one process ships a file's edge tables and syncs its shared
   * ones (Agent's `shared` option), so the file has one loop. `hinted`: the loop
   * is woken on the file's change hints. settled() waits for the sync and the
   * server connection in progress once `signal` aborted.
   */
  joinLoop(loop: DeviceLoop, options: BackgroundOptions & { hinted: boolean }, signal: AbortSignal): { settled(): Promise<void> } {
    const sync = this.#syncPart(loop, options);
    const wakeups = this.#wakeupPart(loop, sync, signal);
    loop.add(sync);
    loop.add(wakeups);
    return {
      settled: async () => {
        await Promise.allSettled([sync.settled(), wakeups.settled()]);
      },
    };
  }

  async stop(): Promise<void> {
    const loop = this.#loop;
    if (!loop) return;
    this.#loop = undefined;
    loop.stop.abort();
    await loop.done;
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#queue.catch(() => undefined);
    await this.driver.close();
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #emit(cause: ChangeEvent['cause'], changes: ChangeSet): void {
    if (changes.keys.size === 0 && !changes.full) return;
    const event: ChangeEvent = { cause, tables: [...changes.keys.keys()], keys: Object.fromEntries(changes.keys), full: changes.full };
    if (changes.full) event.tables = this.tables.filter((t) => t.direction === 'down' || t.direction === 'both').map((t) => t.name);
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (error) {
        this.#log.error({ err: error }, 'an onChange listener threw');
      }
    }
  }

  async #install(config: SharedConfigAnswer): Promise<void> {
    const keptScope = await readState(this.driver, K.scope);
    if (keptScope !== undefined && keptScope !== config.scope) {
      throw new SynclineError('forbidden', "this file holds another user's shared data; open a separate file per user", { scope: config.scope });
    }
    await installSharedCapture(this.driver, config.tables);
    await writeState(this.driver, K.scope, config.scope);
    await writeState(this.driver, K.config, JSON.stringify(config));
    this.#engine = await SharedEngine.load(this.driver, config.tables, this.#source, this.#options.resolver);
  }

  /** Fetches the declarations and installs capture for them. */
  async #contact(): Promise<SharedEngine> {
    const config = await this.#client.config();
    if (config.source_id !== this.#source) {
      throw new SynclineError('invalid_config', `the server knows this device as ${config.source_id} but it runs as ${this.#source}; pass the token's source id as \`source\``);
    }
    const kept = await readState(this.driver, K.config);
    if (!this.#engine || kept !== JSON.stringify(config)) await this.#install(config);
    return this.#engine!;
  }

  async #ready(): Promise<SharedEngine> {
    return this.#engine ?? this.#contact();
  }

  async #push(engine: SharedEngine): Promise<PushReport> {
    const report: PushReport = { rows: 0, bundleSeq: null, conflicts: 0 };
    for (let round = 1; round <= MAX_PUSH_ROUNDS; round++) {
      const outbox = await engine.freeze();
      if (!outbox) return report;
      let answer: PushAnswer;
      try {
        answer = await this.#send(outbox);
      } catch (error) {
        if (!isTransportError(error) || error.code !== 'history_pruned') throw error;
        this.#log.info('the server pruned the history this push was based on; rebuilding from a snapshot');
        await engine.requeueOutbox();
        await this.#hydrate(engine);
        continue;
      }
      if (answer.status === 'committed') {
        await engine.committed(BigInt(answer.bundle_seq));
        this.#log.debug({ bundle_seq: answer.bundle_seq, rows: outbox.entries.length, duplicate: answer.duplicate }, 'push committed');
        return { rows: report.rows + outbox.entries.length, bundleSeq: answer.bundle_seq, conflicts: report.conflicts };
      }
      if (answer.status !== 'conflict') throw new SynclineError('internal', `unexpected push answer ${answer.status}`);
      report.conflicts += answer.conflicts.length;
      this.#log.info({ conflicts: answer.conflicts.length }, 'push refused with conflicts; settling them by policy');
      this.#emit('conflict', await engine.settleRefusal(answer.conflicts));
    }
    throw new SynclineError('conflict', `the push still conflicted after ${MAX_PUSH_ROUNDS} rounds; other devices keep changing the same rows`);
  }

  async #send(outbox: Outbox): Promise<PushAnswer> {
    const rows = outbox.entries.map(SharedEngine.wire);
    const chunkRows = this.#options.chunkRows ?? SharedDefaults.chunkRows;
    const begin = { format_version: 1 as const, source_bundle_id: outbox.bundleId, base_seq: outbox.baseSeq.toString(), row_count: rows.length };
    if (rows.length <= chunkRows) return this.#client.beginPush({ ...begin, rows });
    const opened = await this.#client.beginPush(begin);
    if (opened.status !== 'open') return opened;
    const received = new Set(opened.chunks_received);
    for (let index = 0; index * chunkRows < rows.length; index++) {
      if (!received.has(index)) await this.#client.uploadChunk(opened.session_id, index, rows.slice(index * chunkRows, (index + 1) * chunkRows));
    }
    return this.#client.commitPush(opened.session_id);
  }

  async #pull(engine: SharedEngine): Promise<PullReport> {
    try {
      return await this.#pullPages(engine);
    } catch (error) {
      if (!isTransportError(error) || error.code !== 'history_pruned') throw error;
      this.#log.info('this device is behind the server history; rebuilding from a snapshot');
      const rebuilt = await this.#hydrate(engine);
      const after = await this.#pullPages(engine);
      return { bundles: rebuilt.bundles + after.bundles, rows: rebuilt.rows + after.rows };
    }
  }

  async #pullPages(engine: SharedEngine): Promise<PullReport> {
    const report: PullReport = { bundles: 0, rows: 0 };
    const limit = this.#options.chunkRows ?? SharedDefaults.chunkRows;
    let page = await this.#client.pull({ after: engine.watermark, limit });
    const target = page.target;
    let partial: WireBundle | undefined;
    for (;;) {
      for (const bundle of page.bundles) {
        if (partial?.bundle_seq === bundle.bundle_seq) partial = { ...partial, rows: [...partial.rows, ...bundle.rows], complete: bundle.complete };
        else partial = { ...bundle, rows: [...bundle.rows] };
        if (!partial.complete) continue;
        this.#emit('pull', await engine.applyBundle(partial));
        report.bundles++;
        report.rows += partial.rows.length;
        partial = undefined;
      }
      if (!page.next) break;
      page = await this.#client.pull({ after: BigInt(page.next.after), afterOrdinal: page.next.after_ordinal, target, limit });
    }
    await engine.advanceTo(BigInt(target));
    return report;
  }

  /** Replaces the pulled tables with a snapshot, keeping (and rebasing) pending changes; chunk i+1 downloads while chunk i is written. */
  async #hydrate(engine: SharedEngine): Promise<PullReport> {
    // An outbox may already be committed (the answer was lost in a crash). Requeued, its rows would go out again
    // under a new bundle id and meet themselves as conflicts; pushed as it is, the server recognises it.
    if (await engine.outbox()) await this.#push(engine);
    const snapshot = await this.#client.createSnapshot(this.#options.chunkRows);
    this.#log.info({ snapshot_seq: snapshot.snapshot_seq }, 'hydrating');
    const client = this.#client;
    const fetchChunk = (i: number) => {
      const answer = client.snapshotChunk(snapshot.snapshot_id, i);
      // A prefetched chunk that fails after we stopped waiting must not become an unhandled rejection.
      answer.catch(() => undefined);
      return answer;
    };
    async function* chunks() {
      let next = fetchChunk(0);
      for (let i = 0; ; i++) {
        const chunk = await next;
        if ('end' in chunk) return;
        next = fetchChunk(i + 1);
        yield chunk;
      }
    }
    const rows = await engine.hydrate(chunks(), BigInt(snapshot.snapshot_seq), (done, rows) => {
      this.#options.onHydrationProgress?.({ chunks: done, rows });
      if (done % 25 === 0) this.#log.info({ chunks: done, rows }, 'hydration progress');
    });
    await this.#client.dropSnapshot(snapshot.snapshot_id).catch((error: unknown) => this.#log.warn({ err: error }, 'could not drop the snapshot; it expires on its own'));
    this.#log.info({ rows, snapshot_seq: snapshot.snapshot_seq }, 'hydrated');
    this.#emit('hydrate', { keys: new Map(), full: true });
    return { bundles: 0, rows };
  }

  /**
   * The loop's two-way part: a sync (push, then pull) when the server announced
   * a bundle, the poll came round or a sync failed; a push alone when the app
   * committed pending changes, which moves the watermark over its own bundle (so
   * the other devices' pulls do not queue behind a pull of ours). A sync runs on
   * its own while the loop goes on; its end is told to the loop (settled), which
   * backs this part off after a failure.
   */
  #syncPart(loop: DeviceLoop, options: BackgroundOptions & { hinted: boolean }): LoopPart & { pullNow(): void; settled(): Promise<void> } {
    const clock = this.#clock;
    const pollMs = options.pollMs ?? 30_000;
    const watchMs = options.watchMs ?? DEFAULT_WATCH_MS;
    const committed = this.#localCommits();
    let pull = true;
    let push = false;
    let running: Promise<void> | undefined;
    let nextPollAt = Infinity;
    const part = {
      name: 'two-way',
      retry: {
        baseMs: 250,
        maxMs: options.retryMaxMs ?? 30_000,
        minMs: 50,
        retryable: () => true,
        onFailure: (error: unknown, wait: number) => {
          pull = true;
          this.#log.warn({ err: error, retry_in_ms: wait }, 'background sync failed; retrying');
        },
      },
      pullNow: () => {
        pull = true;
      },
      settled: async () => {
        await running;
      },
      turn: async (): Promise<PartTurn> => {
        if (clock.now() >= nextPollAt) pull = true;
        if (await committed()) push = true;
        // Local writes are checked on every change hint, and this often as a safety net (or as the only way without hints).
        const watchAt = clock.now() + (options.hinted ? QUIET_WATCH_MS : watchMs);
        if (running) return { next: watchAt, waiting: true };
        if (!pull && !push) return { next: Math.min(nextPollAt, watchAt) };
        const pulling = pull;
        pull = false;
        push = false;
        // The poll counts again from the end of this sync (a passed poll time would make every turn due until then).
        nextPollAt = Infinity;
        running = (pulling ? this.sync() : this.pushPending()).then(
          () => {
            running = undefined;
            nextPollAt = clock.now() + pollMs;
            loop.settled(part);
          },
          (error: unknown) => {
            running = undefined;
            loop.settled(part, error);
          },
        );
        return { next: watchAt, waiting: true };
      },
    };
    return part;
  }

  /**
   * The loop's part that hears the server announce new bundles (its event
   * stream, or the scope's MQTT topic): a connection held open on its own; an
   * announcement past the watermark has the sync part pull at once, ending its
   * backoff (the server answers again). A stream that broke is opened again
   * after a backoff, one that ended after a short jittered wait.
   */
  #wakeupPart(loop: DeviceLoop, sync: LoopPart & { pullNow(): void }, signal: AbortSignal): LoopPart & { settled(): Promise<void> } {
    const clock = this.#clock;
    const mqttUrl = this.#options.mqttUrl;
    let open: Promise<void> | undefined;
    let reopenAt = 0;
    const announced = (head: bigint) => {
      if (head <= this.watermark) return;
      sync.pullNow();
      loop.wake(sync);
    };
    const part = {
      name: 'wake-ups',
      retry: {
        baseMs: 500,
        maxMs: 30_000,
        minMs: 100,
        retryable: () => true,
        onFailure: (error: unknown) => this.#log.debug({ err: error }, 'event stream unavailable; polling until it is back'),
      },
      settled: async () => {
        await open;
      },
      turn: async (): Promise<PartTurn> => {
        if (open || signal.aborted) return { waiting: true };
        if (clock.now() < reopenAt) return { next: reopenAt };
        const listening = mqttUrl ? this.#listenMqtt(mqttUrl, signal, announced) : this.#client.events((head) => announced(BigInt(head)), signal).then(() => true);
        open = listening.then(
          (held) => {
            open = undefined;
            reopenAt = clock.now() + backoffDelay(0, 500, 30_000) + 100;
            // MQTT without a scope (never reached the server): polling carries on alone.
            if (!held) reopenAt = Infinity;
            loop.settled(part);
          },
          (error: unknown) => {
            open = undefined;
            loop.settled(part, error);
          },
        );
        return { waiting: true };
      },
    };
    return part;
  }

  /**
   * Follows the scope's retained wake-up topic until `signal` aborts; mqtt.js
   * reconnects on its own, and polling covers the gaps. False when the scope is
   * unknown (the device never reached the server).
   */
  async #listenMqtt(url: string, signal: AbortSignal, announced: (head: bigint) => void): Promise<boolean> {
    // A device that has not reached the server yet learns its scope at first contact; offline, polling carries on alone.
    if ((await readState(this.driver, K.scope)) === undefined) await this.#serial(() => this.#ready()).catch(() => undefined);
    const scope = await readState(this.driver, K.scope);
    if (scope === undefined || signal.aborted) return false;
    const token = this.#options.token;
    // Loaded only for MQTT wake-ups, which most devices never use.
    const { default: mqtt } = await import('mqtt');
    const client = mqtt.connect(url, {
      clientId: this.#source,
      username: SHARED_WAKE_USERNAME,
      password: typeof token === 'string' ? token : await token(),
      reconnectPeriod: 2000,
      clean: true,
    });
    client.on('connect', () => void client.subscribeAsync(sharedWakeTopic(scope), { qos: 1 }).catch((error: unknown) => this.#log.warn({ err: error }, 'wake-up subscription refused')));
    client.on('message', (_topic, payload) => {
      const read = readAnswer(bundleAnnouncementSchema, new TextDecoder().decode(payload));
      if ('answer' in read) announced(BigInt(read.answer.head_seq));
    });
    client.on('error', (error) => this.#log.debug({ err: error }, 'MQTT wake-ups unavailable; polling until they are back'));
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    await client.endAsync(true);
    return true;
  }

  /**
   * Whether the app committed pending changes since the last call. Another
   * connection's commit changes PRAGMA data_version. Writes through this very
   * connection (an app using `sync.db`), which data_version ignores, change
   * total_changes(), and so do Syncline's own; only the app's add journal
   * entries of origin 'L' above the push cursor (Syncline's own are remote, or
   * move the cursor), so the newest of those is read only then, and a failing
   * push does not wake itself. The counters are one statement of a few
   * microseconds, read on each turn of the sync part: on the driver's change
   * hints (better-sqlite3 watches the WAL file, and repeats a hint shortly after,
   * since it can come before its commit is visible) and on its timers.
   */
  #localCommits(): () => Promise<boolean> {
    const counters = async () => (await this.driver.get<{ version: bigint; changes: bigint }>(`SELECT (SELECT data_version FROM pragma_data_version) AS version, total_changes() AS changes`))!;
    const dirty = async () => (await this.#engine?.localWriteMark()) ?? 0n;
    let seen: { version: bigint; changes: bigint } | undefined;
    let seenDirty = 0n;
    return async () => {
      const now = await counters();
      if (seen === undefined) {
        seen = now;
        seenDirty = await dirty();
        return false;
      }
      if (now.version === seen.version && now.changes === seen.changes) return false;
      const otherConnection = now.version !== seen.version;
      const nowDirty = await dirty();
      const ownConnection = nowDirty !== seenDirty;
      seen = now;
      seenDirty = nowDirty;
      return (otherConnection || ownConnection) && (await this.pending()) > 0;
    };
  }
}

/** The token's `sid` claim, read without verifying (the server verifies); undefined when it has none or is not a JWT. */
export function sourceClaim(token: string): string | undefined {
  const payload = token.split('.')[1];
  if (!payload) return undefined;
  try {
    const binary = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)))) as { sid?: unknown };
    return typeof claims.sid === 'string' && claims.sid !== '' ? claims.sid : undefined;
  } catch {
    return undefined;
  }
}
