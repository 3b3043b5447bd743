import { SynclineError } from '../../protocol/errors.js';
import type { ChangeEvent } from './change-stream-event.js';

/** An event waiting for the subscriber, with the seq that acknowledging it acknowledges. */
export interface BufferedEvent {
  event: ChangeEvent;
  /**
   * The event's seq, except inside a snapshot bootstrap: there only the last event
   * carries one (the snapshot's seq), because acknowledging half a snapshot must not
   * let a restarted consumer skip the other half.
   */
  ackSeq: number | undefined;
}

/**
 * The queue between a stream's journal reader and its one consumer. Bounded by
 * the reader (it reads only as much as fits); `taken` counts what the consumer
 * took, so the stream can tell a consumer that stopped from one that is busy.
 */
export class EventBuffer {
  #items: BufferedEvent[] = [];
  #head = 0;
  #taken = 0;
  #closed = false;
  #waiter: ((item: BufferedEvent | undefined) => void) | undefined;
  readonly #onTake: (item: BufferedEvent) => void;

  /** `onTake` runs as each event is handed over, before the consumer sees it, so progress never counts an event in transit as done. */
  constructor(onTake: (item: BufferedEvent) => void) {
    this.#onTake = onTake;
  }

  get size(): number {
    return this.#items.length - this.#head;
  }

  get taken(): number {
    return this.#taken;
  }

  get closed(): boolean {
    return this.#closed;
  }

  push(items: readonly BufferedEvent[]): void {
    if (this.#closed) return;
    let from = 0;
    if (this.#waiter && items.length > 0) {
      const resolve = this.#waiter;
      this.#waiter = undefined;
      this.#taken += 1;
      this.#onTake(items[0]!);
      resolve(items[0]);
      from = 1;
    }
    for (let i = from; i < items.length; i++) this.#items.push(items[i]!);
  }

  /** The next event, now if one waits; undefined once the buffer is closed. One caller at a time. */
  take(): BufferedEvent | undefined | Promise<BufferedEvent | undefined> {
    if (this.#closed) return undefined;
    if (this.size > 0) {
      const item = this.#items[this.#head]!;
      this.#head += 1;
      if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
        this.#items = this.#items.slice(this.#head);
        this.#head = 0;
      }
      this.#taken += 1;
      this.#onTake(item);
      return item;
    }
    if (this.#waiter) throw new SynclineError('invalid_config', 'a change stream has one consumer; wait for one event before asking for the next', {});
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /** Drops what is left (unacknowledged, so a checkpointed consumer gets it again) and ends a waiting take. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#items = [];
    this.#head = 0;
    const resolve = this.#waiter;
    this.#waiter = undefined;
    resolve?.(undefined);
  }
}
