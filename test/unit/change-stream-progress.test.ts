import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { EventBuffer, type BufferedEvent } from '../../src/device/change-stream/change-stream-buffer.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { AckTracker } from '../../src/device/change-stream/change-stream-progress.js';

function item(seq: number): BufferedEvent {
  const event: ChangeEvent = { op: 'insert', table: 't', key: { id: BigInt(seq) }, after: { id: BigInt(seq) }, seq, origin: 'local', at: 0 };
  return { event, ackSeq: seq };
}

/** A bootstrap snapshot event; only the last one of a snapshot carries an ackSeq. */
function snapshotItem(seq: number, last: boolean): BufferedEvent {
  return { event: { ...item(seq).event, op: 'snapshot' }, ackSeq: last ? seq : undefined };
}

describe('change stream acknowledgement', () => {
  test('the checkpoint never passes an event that was not handled (model, property)', () => {
    const action = fc.oneof(
      fc.record({ kind: fc.constant('read' as const), entries: fc.array(fc.boolean(), { minLength: 1, maxLength: 5 }) }),
      fc.record({ kind: fc.constant('take' as const) }),
      fc.record({ kind: fc.constant('ack-last' as const) }),
      fc.record({ kind: fc.constant('ack' as const), seq: fc.integer({ min: 0, max: 200 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10 }), fc.array(action, { maxLength: 80 }), (start, actions) => {
        const tracker = new AckTracker(start, start);
        const buffer = new EventBuffer((taken) => tracker.delivered(taken));
        let position = start;
        let previousTarget = start;
        const taken: number[] = [];
        const handled = new Set<number>();
        const unhandled = new Set<number>();
        for (const a of actions) {
          if (a.kind === 'read') {
            const selected: BufferedEvent[] = [];
            for (const isSelected of a.entries) {
              position += 1;
              if (isSelected) {
                selected.push(item(position));
                unhandled.add(position);
              }
            }
            buffer.push(selected);
          } else if (a.kind === 'take') {
            if (buffer.size > 0) taken.push((buffer.take() as BufferedEvent).event.seq);
          } else {
            const upTo = a.kind === 'ack' ? a.seq : (taken.at(-1) ?? 0);
            tracker.ack(upTo);
            for (const seq of taken) if (seq <= upTo) handled.add(seq), unhandled.delete(seq);
          }
          const target = tracker.target(position, buffer.size === 0);
          assert.ok(target !== undefined && target >= previousTarget, 'the checkpoint only moves forward');
          assert.ok(target <= position);
          for (const seq of unhandled) assert.ok(seq > target, `seq ${seq} is not handled but the checkpoint is at ${target}`);
          previousTarget = target;
        }
      }),
    );
  });

  test('skipped entries are passed once everything delivered is acknowledged', () => {
    const tracker = new AckTracker(0, 0);
    tracker.delivered(item(3));
    assert.equal(tracker.target(9, true), 0, 'seq 3 is in hand');
    tracker.ack(3);
    assert.equal(tracker.target(9, false), 3, 'seq 4..9 may hold an undelivered event');
    assert.equal(tracker.target(9, true), 9);
    tracker.ack(100);
    assert.equal(tracker.acked, 9, 'an ack cannot reach past what was delivered');
  });

  test('half a snapshot acknowledges nothing; its last event acknowledges all of it', () => {
    const tracker = new AckTracker(undefined, undefined);
    tracker.delivered(snapshotItem(50, false));
    tracker.ack(50);
    assert.equal(tracker.target(50, true), undefined);
    tracker.delivered(snapshotItem(50, true));
    assert.equal(tracker.target(50, true), undefined, 'delivered, not yet acknowledged');
    tracker.ack(50);
    assert.equal(tracker.target(60, true), 60);
  });

  test('writes are spaced by the interval unless forced', () => {
    const tracker = new AckTracker(0, 0);
    assert.equal(tracker.due(0, 1000, 500, false), undefined, 'nothing moved');
    assert.equal(tracker.due(4, 1000, 500, false), 4);
    tracker.persisted(4, 1000);
    assert.equal(tracker.due(5, 1200, 500, false), undefined);
    assert.equal(tracker.due(5, 1200, 500, true), 5);
    assert.equal(tracker.due(5, 1500, 500, false), 5);
  });

  test('the buffer hands over in order, wakes a waiting consumer, and ends it on close', async () => {
    const handed: number[] = [];
    const buffer = new EventBuffer((taken) => handed.push(taken.event.seq));
    const waiting = buffer.take();
    assert.ok(waiting instanceof Promise);
    assert.throws(() => buffer.take(), /one consumer/);
    buffer.push([item(1), item(2)]);
    assert.equal((await waiting)!.event.seq, 1);
    assert.equal((buffer.take() as BufferedEvent).event.seq, 2);
    assert.deepEqual(handed, [1, 2]);
    assert.equal(buffer.taken, 2);
    const pending = buffer.take();
    buffer.close();
    assert.equal(await pending, undefined);
    buffer.push([item(3)]);
    assert.equal(buffer.take(), undefined);
  });
});
