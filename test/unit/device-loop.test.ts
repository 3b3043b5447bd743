import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DeviceLoop, type LoopPart, type PartTurn } from '../../src/device/device-loop.js';
import { FakeClock, settle } from '../support/fake-clock.js';

/** A part that records the clock time of each turn and answers with what the test queued (default: on a wake only). */
function part(name: string, clock: FakeClock, answers: (PartTurn | Error)[] = [], retry?: LoopPart['retry']): LoopPart & { turns: number[] } {
  const turns: number[] = [];
  return {
    name,
    turns,
    ...(retry ? { retry } : {}),
    async turn() {
      turns.push(clock.now());
      const answer = answers.shift() ?? {};
      if (answer instanceof Error) throw answer;
      return answer;
    },
  };
}

describe('DeviceLoop (fake clock)', () => {
  test('every part turns at start; then a timer turns only the part that asked for it, a wake every part', async () => {
    const clock = new FakeClock();
    const loop = new DeviceLoop({ clock });
    const a = part('a', clock, [{ next: 100 }, {}]);
    const b = part('b', clock);
    loop.add(a);
    loop.add(b);
    const stop = new AbortController();
    const running = loop.run(stop.signal);
    await settle();
    assert.deepEqual([a.turns, b.turns], [[0], [0]]);
    await clock.advance(100);
    assert.deepEqual([a.turns, b.turns], [[0, 100], [0]]);
    await clock.advance(10_000);
    assert.deepEqual([a.turns, b.turns], [[0, 100], [0]], 'nothing due: one idle wait, no turns');
    loop.wake();
    await settle();
    assert.deepEqual([a.turns, b.turns], [[0, 100, 10_100], [0, 10_100]]);
    stop.abort();
    await running;
  });

  test('a failed turn backs off with the part\'s own attempt count; wakes do not cut it short, a wake of that part does', async () => {
    const clock = new FakeClock();
    const loop = new DeviceLoop({ clock, random: () => 0.5 });
    const failures: number[] = [];
    const retry = { baseMs: 1000, maxMs: 1000, retryable: () => true, onFailure: (_e: unknown, wait: number) => failures.push(wait) };
    const flaky = part('flaky', clock, [new Error('down'), new Error('down'), {}], retry);
    const steady = part('steady', clock);
    loop.add(flaky);
    loop.add(steady);
    const stop = new AbortController();
    const running = loop.run(stop.signal);
    await settle();
    assert.equal(flaky.turns.length, 1);
    assert.deepEqual(failures, [500], 'full jitter over base * 2^1, capped at max');
    loop.wake();
    await settle();
    assert.equal(flaky.turns.length, 1, 'still backing off');
    assert.equal(steady.turns.length, 2, 'the other part turned');
    loop.wake(flaky);
    await settle();
    assert.equal(flaky.turns.length, 2, 'woken itself: its backoff ended');
    assert.deepEqual(failures, [500, 500]);
    await clock.advance(499);
    assert.equal(flaky.turns.length, 2);
    await clock.advance(1);
    assert.equal(flaky.turns.length, 3, 'retried after the backoff');
    stop.abort();
    await running;
  });

  test('a failure no part may retry ends the run; the run ends by itself when every part is done', async () => {
    const clock = new FakeClock();
    const failing = new DeviceLoop({ clock });
    failing.add(part('fatal', clock, [new Error('refused')]));
    await assert.rejects(failing.run(new AbortController().signal), /refused/);
    const draining = new DeviceLoop({ clock });
    const a = part('a', clock, [{ next: 50 }, { done: true }]);
    draining.add(a);
    draining.add(part('b', clock, [{ done: true }]));
    const run = draining.run(new AbortController().signal);
    await clock.advance(50);
    await run;
    assert.deepEqual(a.turns, [0, 50]);
  });

  test('a wake during a turn gives the part another turn right after it', async () => {
    const clock = new FakeClock();
    const loop = new DeviceLoop({ clock });
    let turns = 0;
    loop.add({
      name: 'self-waking',
      async turn() {
        turns += 1;
        if (turns === 1) loop.wake();
        return {};
      },
    });
    const stop = new AbortController();
    const running = loop.run(stop.signal);
    await settle();
    assert.equal(turns, 2);
    stop.abort();
    await running;
  });
});
