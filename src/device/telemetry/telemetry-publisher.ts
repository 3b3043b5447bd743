import pino, { type Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import type { Transport } from '../../transport/transport.js';
import { systemClock, type Clock } from '../../protocol/wakeable-sleep.js';
import type { LoopPart, PartTurn } from '../device-loop.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import type { PublisherOptions } from '../publisher/publisher-options.js';
import { TelemetryLane, type TelemetryStats } from './telemetry-lane.js';
import type { TelemetryTable } from './telemetry-table.js';

export type { TelemetryStats } from './telemetry-lane.js';

/** Batches of one table in flight at once: enough to keep the device, the server and PostgreSQL busy at the same time. */
export const TELEMETRY_MAX_IN_FLIGHT = 4;

export interface TelemetryPublisherOptions {
  db: SqliteDriver;
  transport: Transport;
  tables: readonly TelemetryTable[];
  options: PublisherOptions;
  pollIntervalMs: number;
  logger?: Logger;
  /** Flow control: a table the cloud paused is not sent (its rows wait in the table, the cursor stays) until it is resumed. */
  isPaused?: (table: string) => boolean;
  /** Controls that came back on an ack (HTTP), unread: a pause must reach the device even when only telemetry is sent. */
  onControls?: (controls: readonly unknown[]) => void;
  /** The clock of the retry waits and flush deadlines (tests pass a fake one). */
  clock?: Clock;
  /** Drain: send partial batches at once and be done when every table has nothing left. */
  once?: boolean;
  /** A send settled: the device loop gives the table its next turn. */
  onSettled?: () => void;
  /** Batches of one table in flight at once; TELEMETRY_MAX_IN_FLIGHT by default. */
  maxInFlight?: number;
}

/**
 * Ships telemetry tables as a part of the device loop: each turn gives every
 * table's lane (telemetry-lane.ts: its window of batches in flight, the cursor
 * moving over the acked prefix) its turn; a settled send wakes the loop.
 * Retryable failures back off, others stop the table (the error is kept in the
 * status; nothing moves, so nothing is lost).
 */
export class TelemetryPublisher implements LoopPart {
  readonly name = 'telemetry';
  readonly #o: TelemetryPublisherOptions;
  readonly #lanes: { lane: TelemetryLane; done: boolean }[];
  readonly #abort = new AbortController();
  readonly stats: TelemetryStats = { batchesAcked: 0, rowsAcked: 0, retries: 0, lastError: undefined };

  constructor(options: TelemetryPublisherOptions) {
    this.#o = options;
    const log = options.logger ?? pino({ level: 'silent' });
    const clock = options.clock ?? systemClock;
    if (options.tables.length > 0 && !options.transport.sendTelemetryBatch) {
      throw new SynclineError('invalid_config', 'this transport cannot send telemetry batches', { field: 'telemetry' });
    }
    const { db, transport, pollIntervalMs, isPaused, onControls, onSettled } = options;
    this.#lanes = options.tables.map((table) => ({
      done: false,
      lane: new TelemetryLane({
        db,
        transport,
        table,
        options: options.options,
        maxInFlight: options.maxInFlight ?? TELEMETRY_MAX_IN_FLIGHT,
        pollIntervalMs,
        signal: this.#abort.signal,
        log: log.child({ table: table.table }),
        stats: this.stats,
        clock,
        wake: () => onSettled?.(),
        ...(isPaused ? { isPaused } : {}),
        ...(onControls ? { onControls } : {}),
      }),
    }));
  }

  /** Batches sent and not yet answered, over every table. */
  get inFlight(): number {
    return this.#lanes.reduce((sum, { lane }) => sum + lane.inFlight, 0);
  }

  /** Gives every table its turn; in `once` mode done when each has nothing left, and throws for the first table that cannot ship. */
  async turn(): Promise<PartTurn> {
    let next: number | undefined;
    for (const entry of this.#lanes) {
      if (entry.done || this.#abort.signal.aborted) continue;
      const turn = await entry.lane.turn(this.#o.once === true);
      if (turn.done) entry.done = true;
      else if (turn.next !== undefined) next = Math.min(next ?? turn.next, turn.next);
    }
    return { next, done: this.#lanes.every((l) => l.done) };
  }

  /** Aborts the batches in flight and waits for them to wind down; the cursors move over what was acked before, no further. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.allSettled(this.#lanes.map((l) => l.lane.settle()));
  }
}
