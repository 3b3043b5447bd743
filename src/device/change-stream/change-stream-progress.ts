import type { BufferedEvent } from './change-stream-buffer.js';

/**
 * What a consumer has acknowledged, and so where its checkpoint may stand.
 *
 * ack(seq) acknowledges every event delivered so far with a seq <= seq; it cannot
 * reach past the last delivered event. Inside a snapshot bootstrap nothing is
 * acknowledged until the last snapshot event is, so a consumer that stops halfway
 * bootstraps again rather than resuming with half a snapshot.
 *
 * Entries the stream read but did not deliver (other tables, other ops) need no
 * processing: once everything delivered is acknowledged and nothing waits in the
 * buffer, the checkpoint moves to the read position, so a consumer of a quiet
 * table does not hold back pruning of a busy one.
 */
export class AckTracker {
  #acked: number | undefined;
  #lastAckable: number | undefined;
  /** The ackSeq of the event delivered last; undefined while that is a snapshot event before the last. */
  #lastDelivered: number | undefined;
  #allAcked = true;
  #persisted: number | undefined;
  #persistedAt = Number.NEGATIVE_INFINITY;

  /** `start`: the position the stream resumes from, undefined while a bootstrap is pending. `persisted`: the stored checkpoint. */
  constructor(start: number | undefined, persisted: number | undefined) {
    this.#acked = start;
    this.#lastAckable = start;
    this.#persisted = persisted;
  }

  get acked(): number | undefined {
    return this.#acked;
  }

  delivered(item: BufferedEvent): void {
    if (item.ackSeq !== undefined) this.#lastAckable = item.ackSeq;
    this.#lastDelivered = item.ackSeq;
    this.#allAcked = false;
  }

  /** The bootstrap turned out empty: the snapshot's seq is reached without an event to acknowledge. */
  startAt(seq: number): void {
    this.#acked = seq;
    this.#lastAckable = seq;
  }

  ack(seq: number): void {
    if (this.#lastAckable === undefined) return;
    const upTo = Math.min(seq, this.#lastAckable);
    if (this.#acked === undefined || upTo > this.#acked) this.#acked = upTo;
    if (this.#lastDelivered !== undefined && this.#acked >= this.#lastDelivered) this.#allAcked = true;
  }

  /** Where the checkpoint may stand now (never lower than before), or undefined while nothing may be stored. */
  target(readPosition: number, bufferEmpty: boolean): number | undefined {
    if (this.#acked === undefined) return undefined;
    if (this.#allAcked && bufferEmpty && readPosition > this.#acked) this.#acked = readPosition;
    return this.#acked;
  }

  /** The checkpoint to write now, if any: it moved, and the interval passed (or `force`). */
  due(target: number | undefined, now: number, intervalMs: number, force: boolean): number | undefined {
    if (target === undefined || target === this.#persisted) return undefined;
    return force || now - this.#persistedAt >= intervalMs ? target : undefined;
  }

  persisted(seq: number, now: number): void {
    this.#persisted = seq;
    this.#persistedAt = now;
  }
}
