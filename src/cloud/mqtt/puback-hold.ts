import type { Client } from 'aedes';

/**
 * Holds the PUBACK of a device's batch until the batch is answered, so the two
 * leave in one socket write instead of two (each write is a syscall here and a
 * wake-up in the device; at fan-in that was the largest single cost of the
 * broker). The device prunes on the answer, never on the PUBACK, so a later
 * PUBACK only means the broker confirms what it took later.
 *
 * Holding corks the client's socket: everything written to it waits for the
 * release (further PUBACKs, a control, a PINGRESP), at most one batch's commit.
 * One batch per client is held at a time, so an answer never waits for a later
 * batch's commit. A hold nobody releases (a message no subscriber took) is
 * released by `sweep` after `maxHoldMs`.
 */
export class PubackHold {
  readonly #maxHoldMs: number;
  readonly #held = new Map<Client, { since: number }>();
  /** The held publish of each client, by its payload: aedes hands subscribers a copy of the packet, with the same payload. */
  readonly #byPayload = new WeakMap<Buffer, { client: Client; hold: { since: number } }>();

  constructor(maxHoldMs: number) {
    this.#maxHoldMs = maxHoldMs;
  }

  /** Called before aedes writes the PUBACK of this QoS 1 publish (in authorizePublish). */
  hold(client: Client, payload: Buffer): void {
    // Not behind a full buffer: it drains only once uncorked, and the answer's write would wait for that drain.
    if (this.#held.has(client) || client.conn.destroyed || client.conn.writableNeedDrain) return;
    const hold = { since: Date.now() };
    client.conn.cork();
    this.#held.set(client, hold);
    this.#byPayload.set(payload, { client, hold });
  }

  /** For a delivered message: the function that releases its held PUBACK, or undefined when it has none. */
  take(payload: Buffer): (() => void) | undefined {
    const entry = this.#byPayload.get(payload);
    if (!entry) return undefined;
    this.#byPayload.delete(payload);
    return () => this.#release(entry.client, entry.hold);
  }

  /** Releases holds older than the limit (call it periodically). */
  sweep(now = Date.now()): void {
    for (const [client, hold] of this.#held) if (now - hold.since >= this.#maxHoldMs) this.#release(client, hold);
  }

  /** The client is gone: forget its hold. */
  forget(client: Client): void {
    const hold = this.#held.get(client);
    if (hold) this.#release(client, hold);
  }

  #release(client: Client, hold: { since: number }): void {
    // Only the hold that corked: a late release of an older one must not uncork a newer one.
    if (this.#held.get(client) !== hold) return;
    this.#held.delete(client);
    client.conn.uncork();
  }
}
