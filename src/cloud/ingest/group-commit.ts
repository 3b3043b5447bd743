import type { Logger } from 'pino';
import type { Queryable, Store } from '../store/store.js';

/** One batch's work, as a group runs it inside a shared transaction or as it runs on its own. */
export interface GroupJob<T> {
  /**
   * Orders the jobs of a group (stable: jobs with one key keep their arrival
   * order). Every group takes its row locks in key order, so two groups in flight
   * at once never wait on each other in a cycle. The lineage's identity.
   */
  lockKey: string;
  /** Journal rows the batch carries: a group stops growing at `maxRows`. */
  rows: number;
  /** The batch's statements inside the group's transaction; must be safe to run again (a lost connection reruns the transaction). */
  inGroup(tx: Queryable): Promise<T>;
  /** The batch in a transaction of its own, with its own retries: for a group of one, and for a job that failed in a group. */
  alone(): Promise<T>;
  /**
   * Runs this job together with the group's other jobs of the same runner in
   * set-based statements (one statement per step for all of them); without it,
   * or when that fails, the job runs by `inGroup`.
   */
  together?: SetRunner;
}

/**
 * Runs many jobs of one kind in one transaction with a statement per step for
 * all of them, answering each in the jobs' order. A job answered `ok: false`
 * must have written nothing: it runs alone after the commit (a refusal found
 * before any write, like a stale epoch). Throwing rolls the whole group back, and
 * it runs again with a savepoint around each job's `inGroup`.
 */
export interface SetRunner {
  run(tx: Queryable, jobs: readonly GroupJob<unknown>[]): Promise<Outcome<unknown>[]>;
}

export interface GroupCommitOptions {
  /** Most batches in one transaction. */
  maxBatches?: number;
  /** A group takes no more batches once it holds this many rows (a big batch goes alone). */
  maxRows?: number;
  /** Group transactions running at once; PGlite has one connection, so 1 there. */
  maxInFlight?: number;
  logger?: Logger;
}

export const GROUP_DEFAULTS = { maxBatches: 256, maxRows: 20_000, maxInFlight: 2 } as const;

interface Waiting<T> {
  job: GroupJob<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Group figures since start (metrics and the bench). */
export interface GroupStats {
  groups: number;
  batches: number;
  /** Jobs that failed inside a group and were run again on their own. */
  isolated: number;
  largest: number;
}

/**
 * Group commit: batches from many devices that arrive while a transaction is
 * running wait, and go together into the next one, so a fleet of small batches
 * costs one commit (one WAL flush) per group instead of one per batch, and jobs
 * of one kind run together in set-based statements (their `together` runner:
 * row-batch-group.ts), so it costs a few statements per group instead of five to
 * ten per batch. A group first runs as one plain transaction; when a job fails, that is rolled back and
 * the group runs again with each job under a savepoint of its own, and a job that
 * fails there is rolled back to it and runs again alone once the group committed,
 * so a bad batch never fails its neighbours and gets exactly the answer it would
 * have got by itself. Every
 * promise settles only after the commit that holds its batch (or after its own
 * transaction), so an ack never precedes durability. When the group's own
 * transaction fails (commit refused, connection lost beyond retries) every job
 * runs alone.
 */
export class GroupCommitter {
  readonly #store: Store;
  readonly #maxBatches: number;
  readonly #maxRows: number;
  readonly #maxInFlight: number;
  readonly #log: Logger | undefined;
  readonly #waiting: Waiting<unknown>[] = [];
  #inFlight = 0;
  #scheduled = false;
  readonly stats: GroupStats = { groups: 0, batches: 0, isolated: 0, largest: 0 };

  constructor(store: Store, options: GroupCommitOptions = {}) {
    this.#store = store;
    this.#maxBatches = Math.max(1, options.maxBatches ?? GROUP_DEFAULTS.maxBatches);
    this.#maxRows = Math.max(1, options.maxRows ?? GROUP_DEFAULTS.maxRows);
    this.#maxInFlight = Math.max(1, options.maxInFlight ?? (store.kind === 'pglite' ? 1 : GROUP_DEFAULTS.maxInFlight));
    this.#log = options.logger;
  }

  /** Runs the job in the next group; settles after the commit that holds it. */
  submit<T>(job: GroupJob<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#waiting.push({ job, resolve, reject } as Waiting<unknown>);
      this.#schedule();
    });
  }

  /** Starts the next group on a later turn, so the batches that arrive in one turn of the event loop go together. */
  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#maxInFlight || this.#waiting.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      while (this.#inFlight < this.#maxInFlight && this.#waiting.length > 0) {
        const group = this.#take();
        this.#inFlight += 1;
        void this.#run(group).finally(() => {
          this.#inFlight -= 1;
          this.#schedule();
        });
      }
    });
  }

  #take(): Waiting<unknown>[] {
    const group: Waiting<unknown>[] = [];
    let rows = 0;
    while (this.#waiting.length > 0 && group.length < this.#maxBatches) {
      const next = this.#waiting[0]!;
      if (group.length > 0 && rows + next.job.rows > this.#maxRows) break;
      group.push(this.#waiting.shift()!);
      rows += next.job.rows;
    }
    return group;
  }

  async #run(group: Waiting<unknown>[]): Promise<void> {
    this.stats.groups += 1;
    this.stats.batches += group.length;
    this.stats.largest = Math.max(this.stats.largest, group.length);
    if (group.length === 1) return settle(group[0]!, () => group[0]!.job.alone());
    const ordered = group.map((w, arrival) => ({ w, arrival })).sort((a, b) => (a.w.job.lockKey < b.w.job.lockKey ? -1 : a.w.job.lockKey > b.w.job.lockKey ? 1 : a.arrival - b.arrival));
    let outcomes: Outcome<unknown>[];
    try {
      outcomes = await this.#runOptimistic(ordered.map((o) => o.w.job));
    } catch (error) {
      this.#log?.warn({ err: error, batches: group.length }, 'group transaction failed; its batches run one by one');
      this.stats.isolated += group.length;
      for (const w of group) await settle(w, () => w.job.alone());
      return;
    }
    const failed: Waiting<unknown>[] = [];
    ordered.forEach(({ w }, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) w.resolve(outcome.value);
      else failed.push(w);
    });
    // In arrival order, after the commit: a failed job may depend on a neighbour of its lineage that committed.
    this.stats.isolated += failed.length;
    for (const w of group) if (failed.includes(w)) await settle(w, () => w.job.alone());
  }

  /**
   * Runs the jobs without a savepoint each (two statements per batch saved), and
   * each run of consecutive jobs (in lock order) with one set runner in set-based
   * statements: when anything fails, that transaction is rolled back and the
   * group runs again with a savepoint around each job, so only the failing ones
   * are set apart.
   */
  async #runOptimistic(jobs: GroupJob<unknown>[]): Promise<Outcome<unknown>[]> {
    const failedJob = Symbol('a job failed');
    try {
      return await this.#store.transaction(async (tx) => {
        // Allocated per attempt: a lost connection runs this function again from the start.
        const results: Outcome<unknown>[] = [];
        for (let i = 0; i < jobs.length; ) {
          const runner = jobs[i]!.together;
          let end = i + 1;
          while (runner && end < jobs.length && jobs[end]!.together === runner) end += 1;
          const run = jobs.slice(i, end);
          try {
            if (runner && run.length > 1) results.push(...(await runner.run(tx, run)));
            else for (const job of run) results.push({ ok: true, value: await job.inGroup(tx) });
          } catch (error) {
            throw Object.assign(new Error('a batch of the group failed'), { [failedJob]: true, cause: error });
          }
          i = end;
        }
        return results;
      });
    } catch (error) {
      if (!(typeof error === 'object' && error !== null && failedJob in error)) throw error;
      return this.#store.transaction(async (tx) => {
        const results: Outcome<unknown>[] = [];
        for (const job of jobs) results.push(await runUnderSavepoint(tx, job));
        return results;
      });
    }
  }
}

const SAVEPOINT = 'syncline_group_batch';

async function runUnderSavepoint(tx: Queryable, job: GroupJob<unknown>): Promise<Outcome<unknown>> {
  await tx.query(`SAVEPOINT ${SAVEPOINT}`);
  try {
    const value = await job.inGroup(tx);
    await tx.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    return { ok: true, value };
  } catch (error) {
    // Undoes exactly this job; a connection that is gone fails here too and the transaction is retried or run apart.
    await tx.query(`ROLLBACK TO SAVEPOINT ${SAVEPOINT}`);
    await tx.query(`RELEASE SAVEPOINT ${SAVEPOINT}`);
    return { ok: false, error };
  }
}

async function settle(w: Waiting<unknown>, run: () => Promise<unknown>): Promise<void> {
  try {
    w.resolve(await run());
  } catch (error) {
    w.reject(error);
  }
}
