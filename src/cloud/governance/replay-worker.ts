import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { replayLineage, type ReplayOptions } from './replay.js';
import { WakeableSleep } from '../../protocol/wakeable-sleep.js';

export interface ReplayWorkerOptions extends ReplayOptions {
  store: Store;
  logger: Logger;
  /**
   * How often to look for replays this process was not told about (another server
   * process approved, or a replay waits after a restart or a transient error).
   */
  pollMs?: number;
}

export const REPLAY_POLL_MS = 2000;
const BATCH_OF_LINEAGES = 100;

/**
 * Drains every pending replay once: each lineage until it finishes, blocks or
 * fails. An error on one lineage (a lost connection) is logged and left for the
 * next pass; the others go on. Returns how many rows were replayed.
 */
export async function drainReplays(store: Store, options: ReplayOptions & { signal?: AbortSignal; logger?: Logger }): Promise<number> {
  let total = 0;
  let afterId = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    // uuidv7 ids sort by creation, so older replays go first.
    const { rows } = await store.query<{ id: string; lineage_id: string }>(
      `SELECT id, lineage_id FROM edge_replay_intents WHERE state = 'pending' AND id > $1::uuid ORDER BY id LIMIT $2`,
      [afterId, BATCH_OF_LINEAGES],
    );
    for (const intent of rows) {
      if (options.signal?.aborted) return total;
      try {
        total += (await replayLineage(store, intent.lineage_id, options)).replayed;
      } catch (error) {
        options.logger?.error({ err: error, lineage_id: intent.lineage_id, replay_id: intent.id }, 'replay step failed; retrying on the next pass');
      }
    }
    const last = rows.at(-1);
    if (!last || rows.length < BATCH_OF_LINEAGES) return total;
    afterId = last.id;
  }
}

/**
 * Replays staged rows in the background: woken at once by approvals made in this
 * process, and polling for the rest. `run` returns when the signal aborts, after
 * the step in progress commits (each step is one transaction), so a stop never
 * leaves half a chunk behind.
 */
export class ReplayWorker {
  readonly #options: ReplayWorkerOptions;
  /** Its wait between passes; a wake during a pass is kept, so the next pass follows at once. */
  readonly #idle = new WakeableSleep();

  constructor(options: ReplayWorkerOptions) {
    this.#options = options;
  }

  /** Asks for a pass now (after an approval or a resume). */
  wake(): void {
    this.#idle.wake();
  }

  async run(signal: AbortSignal): Promise<void> {
    const { store, logger } = this.#options;
    const pollMs = this.#options.pollMs ?? REPLAY_POLL_MS;
    while (!signal.aborted) {
      try {
        const replayed = await drainReplays(store, { ...this.#options, signal });
        if (replayed > 0) logger.debug({ rows: replayed }, 'replay pass done');
      } catch (error) {
        logger.error({ err: error }, 'replay pass failed; retrying');
      }
      await this.#idle.sleep(pollMs, signal);
    }
  }
}
