import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { WorkQueue } from '../../src/cloud/mqtt/work-queue.js';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('WorkQueue', () => {
  test("one key's jobs run one at a time in arrival order, even when a later one would finish first", async () => {
    const queue = new WorkQueue(8, 100);
    const done: string[] = [];
    const slow = deferred();
    queue.push('device-a', async () => {
      await slow.promise;
      done.push('a1');
    });
    queue.push('device-a', async () => void done.push('a2'));
    queue.push('device-b', async () => void done.push('b1'));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(done, ['b1'], 'another key is not held up by a slow one');
    slow.resolve();
    await queue.idle();
    assert.deepEqual(done, ['b1', 'a1', 'a2']);
  });

  test('never runs more than maxActive jobs at once', async () => {
    const queue = new WorkQueue(2, 100);
    let running = 0;
    let peak = 0;
    for (let i = 0; i < 10; i += 1) {
      queue.push(`k${i}`, async () => {
        running += 1;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 2));
        running -= 1;
      });
    }
    await queue.idle();
    assert.equal(peak, 2);
  });

  test('push answers with a promise once the backlog is full and settles it when there is room; a failing job does not stop the queue', async () => {
    const queue = new WorkQueue(1, 2);
    const gate = deferred();
    assert.equal(queue.push('a', () => gate.promise.then(() => Promise.reject(new Error('boom')))), undefined);
    assert.equal(queue.push('a', async () => {}), undefined);
    const held = queue.push('a', async () => {});
    assert.ok(held instanceof Promise, 'the third queued job finds the backlog full');
    gate.resolve();
    await held;
    await queue.idle();
    assert.equal(queue.size, 0);
  });
});
