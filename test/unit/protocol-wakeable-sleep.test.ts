import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep } from '../../src/protocol/backoff.js';
import { WakeableSleep } from '../../src/protocol/wakeable-sleep.js';
import { FakeClock, settle } from '../support/fake-clock.js';

/** The state of a promise without waiting for it. */
async function state<T>(promise: Promise<T>): Promise<{ done: false } | { done: true; value: T }> {
  let result: { done: false } | { done: true; value: T } = { done: false };
  void promise.then((value) => (result = { done: true, value }));
  await settle();
  return result;
}

describe('WakeableSleep (fake clock)', () => {
  test('sleeps until its time is up, then resolves false', async () => {
    const clock = new FakeClock();
    const idle = new WakeableSleep(clock);
    const slept = idle.sleep(1000);
    await clock.advance(999);
    assert.deepEqual(await state(slept), { done: false });
    await clock.advance(1);
    assert.deepEqual(await state(slept), { done: true, value: false });
    assert.equal(clock.pending, 0);
  });

  test('a wake ends the sleep at once with true and cancels its timer', async () => {
    const clock = new FakeClock();
    const idle = new WakeableSleep(clock);
    const slept = idle.sleep(60_000);
    await clock.advance(10);
    idle.wake();
    assert.deepEqual(await state(slept), { done: true, value: true });
    assert.equal(clock.pending, 0);
    assert.equal(clock.now(), 10);
  });

  test('a wake while nobody sleeps is kept for the next sleep, once however many came', async () => {
    const clock = new FakeClock();
    const idle = new WakeableSleep(clock);
    idle.wake();
    idle.wake();
    assert.equal(await idle.sleep(60_000), true);
    const second = idle.sleep(500);
    assert.deepEqual(await state(second), { done: false });
    await clock.advance(500);
    assert.deepEqual(await state(second), { done: true, value: false });
  });

  test('an abort ends the sleep with false; an aborted signal does not sleep at all', async () => {
    const clock = new FakeClock();
    const idle = new WakeableSleep(clock);
    const stop = new AbortController();
    const slept = idle.sleep(60_000, stop.signal);
    stop.abort();
    assert.deepEqual(await state(slept), { done: true, value: false });
    assert.equal(clock.pending, 0);
    assert.equal(await idle.sleep(60_000, stop.signal), false);
    assert.equal(clock.pending, 0);
    // A wake after the abort is not lost either.
    idle.wake();
    assert.equal(await idle.sleep(60_000), true);
  });

  test('sleepUntil wakes at the deadline on the clock, at once for one already past', async () => {
    const clock = new FakeClock();
    const idle = new WakeableSleep(clock);
    await clock.advance(100);
    const slept = idle.sleepUntil(250);
    await clock.advance(149);
    assert.deepEqual(await state(slept), { done: false });
    await clock.advance(1);
    assert.deepEqual(await state(slept), { done: true, value: false });
    const past = idle.sleepUntil(50);
    await clock.advance(0);
    assert.deepEqual(await state(past), { done: true, value: false });
  });

  test('a loop driven by it: polls on time, and a hint makes it look at once', async () => {
    const clock = new FakeClock();
    const idle = new WakeableSleep(clock);
    const stop = new AbortController();
    const looked: number[] = [];
    const loop = (async () => {
      while (!stop.signal.aborted) {
        looked.push(clock.now());
        await idle.sleep(1000, stop.signal);
      }
    })();
    await clock.advance(2500);
    assert.deepEqual(looked, [0, 1000, 2000]);
    idle.wake();
    await settle();
    assert.deepEqual(looked, [0, 1000, 2000, 2500]);
    await clock.advance(1000);
    assert.deepEqual(looked, [0, 1000, 2000, 2500, 3500]);
    stop.abort();
    await loop;
    assert.equal(clock.pending, 0);
  });

  test('sleep() of backoff is the same wait on the same clock', async () => {
    const clock = new FakeClock();
    const slept = sleep(300, undefined, clock);
    await clock.advance(299);
    assert.deepEqual(await state(slept), { done: false });
    await clock.advance(1);
    assert.deepEqual(await state(slept), { done: true, value: undefined });
  });
});
