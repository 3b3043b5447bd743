import { systemClock, WakeableSleep, type Clock } from './wakeable-sleep.js';

/**
 * Exponential backoff with full jitter: a random wait between 0 and
 * min(max, base * 2^attempt). Many devices coming back after an outage then
 * spread out instead of retrying in lockstep. Lives in protocol because device
 * and cloud share it (the cloud retries a lost database connection with it).
 * Every retry loop waits with it; none keeps its own formula.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

/** Resolves after `ms`, or early (without error) when the signal aborts: a WakeableSleep nobody wakes. */
export async function sleep(ms: number, signal?: AbortSignal, clock: Clock = systemClock): Promise<void> {
  await new WakeableSleep(clock).sleep(ms, signal);
}
