import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { HybridClock, MAX_DRIFT_MS, compareHlc, formatHlc, parseHlc, type HlcParts } from '../../src/protocol/hlc.js';

/** Source ids as the credentials allow them. */
const sourceArb = fc.stringMatching(/^[A-Za-z0-9._:-]{1,12}$/);
const partsArb: fc.Arbitrary<HlcParts> = fc.record({
  ms: fc.oneof(fc.integer({ min: 0, max: 999_999_999_999_999 }), fc.integer({ min: 1_700_000_000_000, max: 1_700_000_000_010 })),
  counter: fc.oneof(fc.integer({ min: 0, max: 999_999 }), fc.integer({ min: 0, max: 3 })),
  source: fc.oneof(sourceArb, fc.constantFrom('a', 'b', 'a-b', 'phone')),
});
const stampArb = partsArb.map(formatHlc);

const sign = (n: number) => (n < 0 ? -1 : n > 0 ? 1 : 0);
const textOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Wall clock readings that stall, step back (NTP), jump far back, and move forward. */
const wallSteps = fc.array(
  fc.oneof(
    fc.constant(0),
    fc.integer({ min: -5, max: 5 }),
    fc.integer({ min: -86_400_000, max: -1 }),
    fc.integer({ min: 1, max: 10_000 }),
  ),
  { minLength: 1, maxLength: 200 },
);

describe('formatHlc / parseHlc', () => {
  test('fixed-width text that parses back to its parts (property)', () => {
    fc.assert(
      fc.property(partsArb, (parts) => {
        const text = formatHlc(parts);
        assert.match(text, /^\d{15}-\d{6}-/);
        assert.deepEqual(parseHlc(text), { ...parts });
      }),
    );
  });

  test('unreadable stamps parse to undefined', () => {
    for (const text of ['', 'nonsense', '1-2-a', '000000000000001-000001-', '000000000000001-0000001-a', '00000000000001-000001-a']) assert.equal(parseHlc(text), undefined, text);
  });
});

describe('compareHlc', () => {
  test('agrees with plain text order for equal-width parts (property)', () => {
    fc.assert(
      fc.property(stampArb, stampArb, (a, b) => {
        assert.equal(sign(compareHlc(a, b)), textOrder(a, b), `${a} vs ${b}`);
      }),
      { numRuns: 2000 },
    );
  });

  test('is a total order: reflexive, antisymmetric, transitive, and 0 only for equal stamps (property)', () => {
    fc.assert(
      fc.property(stampArb, stampArb, stampArb, (a, b, c) => {
        assert.equal(compareHlc(a, a), 0);
        assert.equal(sign(compareHlc(a, b)) + sign(compareHlc(b, a)), 0);
        assert.equal(compareHlc(a, b) === 0, a === b);
        if (compareHlc(a, b) <= 0 && compareHlc(b, c) <= 0) assert.ok(compareHlc(a, c) <= 0, `${a} <= ${b} <= ${c}`);
      }),
      { numRuns: 2000 },
    );
  });

  test('orders by ms, then counter, then source', () => {
    const at = (ms: number, counter: number, source: string) => formatHlc({ ms, counter, source });
    assert.ok(compareHlc(at(2, 0, 'a'), at(1, 999_999, 'z')) > 0);
    assert.ok(compareHlc(at(1, 2, 'a'), at(1, 1, 'z')) > 0);
    assert.ok(compareHlc(at(1, 1, 'b'), at(1, 1, 'a')) > 0);
  });

  test('an unreadable stamp sorts before every readable one', () => {
    const readable = formatHlc({ ms: 0, counter: 0, source: 'a' });
    assert.ok(compareHlc('', readable) < 0);
    assert.ok(compareHlc(readable, 'garbage') > 0);
    assert.equal(compareHlc('x', 'x'), 0);
    assert.ok(compareHlc('x', 'y') < 0);
  });
});

describe('HybridClock', () => {
  test('stamps strictly increase whatever the wall clock does (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1_000_000, max: 1_800_000_000_000 }), wallSteps, sourceArb, (start, steps, source) => {
        const clock = new HybridClock(source);
        let wall = start;
        let previous = clock.stamp(wall);
        for (const step of steps) {
          wall = Math.max(0, wall + step);
          const next = clock.stamp(wall);
          assert.ok(compareHlc(previous, next) < 0, `${previous} then ${next}`);
          assert.ok(previous < next, 'text order agrees');
          assert.ok(parseHlc(next)!.ms >= wall, 'a stamp never runs behind the wall clock');
          previous = next;
        }
      }),
    );
  });

  test('a stalled clock overflows the counter into the next millisecond', () => {
    const clock = new HybridClock('a', { ms: 5_000, counter: 999_998 });
    const a = clock.stamp(5_000);
    const b = clock.stamp(5_000);
    assert.deepEqual(parseHlc(a), { ms: 5_000, counter: 999_999, source: 'a' });
    assert.deepEqual(parseHlc(b), { ms: 5_001, counter: 0, source: 'a' });
    assert.ok(compareHlc(a, b) < 0);
  });

  test('observing a stamp from the future makes every later stamp larger (property)', () => {
    fc.assert(
      fc.property(partsArb, fc.integer({ min: 0, max: 1_800_000_000_000 }), wallSteps, sourceArb, (seen, wallStart, steps, source) => {
        const clock = new HybridClock(source);
        clock.stamp(wallStart);
        const observed = formatHlc(seen);
        // Observed as of a local clock far enough ahead that no drift limit applies here.
        clock.observe(observed, seen.ms);
        let wall = wallStart;
        for (const step of steps) {
          wall = Math.max(0, wall + step);
          const next = clock.stamp(wall);
          assert.ok(compareHlc(next, observed) > 0, `${next} after observing ${observed}`);
        }
      }),
    );
  });

  test('a stamp further ahead of the local clock than the drift limit is ignored', () => {
    const clock = new HybridClock('a', { ms: 10_000, counter: 0 });
    clock.observe(formatHlc({ ms: 10_000 + MAX_DRIFT_MS + 1, counter: 0, source: 'wild' }), 10_000);
    assert.deepEqual(clock.state, { ms: 10_000, counter: 0 });
    clock.observe(formatHlc({ ms: 10_000 + MAX_DRIFT_MS, counter: 3, source: 'fast' }), 10_000);
    assert.deepEqual(clock.state, { ms: 10_000 + MAX_DRIFT_MS, counter: 3 });
  });

  test('observing an older stamp, or garbage, changes nothing', () => {
    const clock = new HybridClock('a', { ms: 10_000, counter: 5 });
    clock.observe(formatHlc({ ms: 9_000, counter: 999, source: 'z' }));
    clock.observe(formatHlc({ ms: 10_000, counter: 4, source: 'z' }));
    clock.observe('not a stamp');
    assert.deepEqual(clock.state, { ms: 10_000, counter: 5 });
  });

  test('state round-trips: a clock restored from its state keeps increasing', () => {
    const first = new HybridClock('a');
    const last = first.stamp(1_000);
    first.stamp(1_000);
    const restored = new HybridClock('a', first.state);
    assert.ok(compareHlc(restored.stamp(500), last) > 0);
  });

  test('two writers never produce equal stamps in the same millisecond', () => {
    const a = new HybridClock('a');
    const b = new HybridClock('b');
    assert.notEqual(a.stamp(1_000), b.stamp(1_000));
  });
});
