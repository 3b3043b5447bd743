import pino, { type Logger } from 'pino';
import { backoffDelay } from '../protocol/backoff.js';
import { systemClock, WakeableSleep, type Clock } from '../protocol/wakeable-sleep.js';

/** What a part's turn asks of the loop. */
export interface PartTurn {
  /** When the part wants its next turn though nothing woke the loop (clock time; at or before now: at once). Undefined: on a wake only. */
  next?: number | undefined;
  /** The part has nothing left to do in this run (a drain finished); the run ends when every part is done. */
  done?: boolean;
  /** Work this turn started (or found) runs on; its outcome comes by the loop's settled(), so this turn is no success yet for the backoff. */
  waiting?: boolean;
}

/**
 * One kind of work on a device file (the edge publisher, telemetry, two-way
 * sync, ...). A turn does what is due now and returns; work that takes a round
 * trip (a delivery, a sync, an event stream) runs on its own and tells the
 * loop when it settles (wake(), or settled() with its outcome), so the next
 * turn takes it from there.
 */
export interface LoopPart {
  readonly name: string;
  turn(): Promise<PartTurn>;
  /** A failed turn that this allows is retried after a backoff (the part's own attempt count); any other failure ends the run. */
  retry?: {
    baseMs: number;
    maxMs: number;
    /** Added to every wait (backoffDelay's full jitter may give 0). */
    minMs?: number;
    retryable(error: unknown): boolean;
    /** Logs the failure its own way (default: a warning naming the part). */
    onFailure?(error: unknown, waitMs: number): void;
  };
}

interface PartState {
  part: LoopPart;
  next: number | undefined;
  failures: number;
  /** Backing off: no turn before this time, whatever wakes the loop, unless the part is woken itself (wake(part)). */
  retryAt: number | undefined;
  done: boolean;
}

/**
 * The device's one loop: one idle wait (a WakeableSleep on one clock), woken by
 * the file's change hint, settled deliveries, control messages and server
 * announcements, and by the parts' own timers. A wake gives every part a turn;
 * a timer only the parts that asked for that time. Each part has one backoff
 * state. One lifecycle: run(signal) until the signal aborts (the owner's
 * stop()) or every part is done.
 */
export class DeviceLoop {
  readonly #clock: Clock;
  readonly #parts: PartState[] = [];
  readonly #idle: WakeableSleep;
  readonly #log: Logger;
  readonly #random: () => number;
  /** A failure of work that ran on its own and that its part may not retry: the run ends with it. */
  #fatal: { error: unknown } | undefined;

  constructor(options: { clock?: Clock; logger?: Logger; random?: () => number } = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? Math.random;
    this.#idle = new WakeableSleep(this.#clock);
    this.#log = options.logger ?? pino({ level: 'silent' });
  }

  /** Adds a part; its first turn comes at once. Parts are built after the loop because their work wakes it. */
  add(part: LoopPart): void {
    this.#parts.push({ part, next: this.#clock.now(), failures: 0, retryAt: undefined, done: false });
    this.#idle.wake();
  }

  /** Something may be due: every part gets a turn soon. With a part, that part's backoff ends too (its peer answers again). */
  wake(part?: LoopPart): void {
    const state = part && this.#parts.find((s) => s.part === part);
    if (state) state.retryAt = undefined;
    for (const s of this.#parts) s.next = Math.min(s.next ?? Infinity, this.#clock.now());
    this.#idle.wake();
  }

  /** Work a part started settled: an error backs the part off (or ends the run, as a failed turn would), success resets its attempt count. */
  settled(part: LoopPart, error?: unknown): void {
    const state = this.#parts.find((s) => s.part === part);
    if (state && error === undefined) state.failures = 0;
    else if (state) this.#failed(state, error);
    this.wake();
  }

  /**
   * Runs the parts' turns until `signal` aborts (after the turn in progress) or
   * every part is done; rejects with the first failure no part may retry. The
   * owner stops it through the signal (the agent's stop(), SharedSync's stop()).
   */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      for (const state of this.#parts) {
        if (this.#fatal) throw this.#fatal.error;
        if (signal.aborted) return;
        if (!state.done && this.#due(state)) await this.#turn(state);
      }
      if (this.#fatal) throw this.#fatal.error;
      if (this.#parts.every((s) => s.done)) return;
      const at = Math.min(...this.#parts.map((s) => this.#wakeAt(s)));
      if (at <= this.#clock.now()) {
        // Busy (a backlog in chunks): let deliveries and timers run between turns.
        await yieldToEvents();
        continue;
      }
      await this.#idle.sleepUntil(at === Infinity ? this.#clock.now() + 2 ** 30 : at, signal);
    }
  }

  #due(state: PartState): boolean {
    return this.#wakeAt(state) <= this.#clock.now();
  }

  #wakeAt(state: PartState): number {
    if (state.done) return Infinity;
    if (state.retryAt !== undefined) return state.retryAt;
    return state.next ?? Infinity;
  }

  async #turn(state: PartState): Promise<void> {
    const { part } = state;
    state.next = undefined;
    state.retryAt = undefined;
    let turn: PartTurn;
    try {
      turn = await part.turn();
    } catch (error) {
      this.#failed(state, error);
      if (this.#fatal) throw error;
      return;
    }
    if (turn.waiting !== true) state.failures = 0;
    state.done = turn.done === true;
    state.next = turn.next === undefined ? state.next : Math.min(turn.next, state.next ?? Infinity);
  }

  #failed(state: PartState, error: unknown): void {
    const { part } = state;
    if (!part.retry?.retryable(error)) {
      this.#fatal ??= { error };
      return;
    }
    state.failures += 1;
    const wait = (part.retry.minMs ?? 0) + backoffDelay(state.failures, part.retry.baseMs, part.retry.maxMs, this.#random);
    state.retryAt = this.#clock.now() + wait;
    if (part.retry.onFailure) part.retry.onFailure(error, wait);
    else this.#log.warn({ part: part.name, err: error, retry_in_ms: wait }, 'device loop: a turn failed; retrying');
  }
}

/** Lets pending I/O callbacks and timers run: setImmediate in Node, a zero timeout where there is none (browsers). */
function yieldToEvents(): Promise<void> {
  return new Promise((resolve) => (typeof setImmediate === 'function' ? setImmediate(resolve) : setTimeout(resolve, 0)));
}
