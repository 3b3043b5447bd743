/**
 * How long an MQTT device waits for the cloud's answer to a batch before sending
 * it again. A server that dies or hangs while holding a batch answers never, and
 * with clean server sessions the broker drops what it held; the device's resend
 * (same batch id, deduplicated by the cloud) is what recovers it, so the wait
 * must be short. A cloud that is merely slow must not get every batch twice, so
 * the wait follows the answers it sees, as TCP's retransmission timer does:
 * 4x the smoothed answer time, never below `minMs`, doubled after each silence
 * until an answer comes, never above `maxMs`.
 */
export const MQTT_RESEND_MIN_MS = 3000;

export class ResendTimeout {
  readonly #minMs: number;
  readonly #maxMs: number;
  #smoothedMs: number | undefined;
  #silences = 0;

  constructor(minMs: number, maxMs: number) {
    this.#minMs = Math.min(minMs, maxMs);
    this.#maxMs = maxMs;
  }

  current(): number {
    const base = Math.max(this.#minMs, 4 * (this.#smoothedMs ?? 0));
    return Math.min(this.#maxMs, base * 2 ** Math.min(this.#silences, 10));
  }

  answered(afterMs: number): void {
    this.#silences = 0;
    this.#smoothedMs = this.#smoothedMs === undefined ? afterMs : 0.875 * this.#smoothedMs + 0.125 * afterMs;
  }

  timedOut(): void {
    this.#silences += 1;
  }
}
