import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BatchedLookup } from '../../src/cloud/store/batched-lookup.js';

test('lookups asked in one turn share one load; each gets its own answer, a repeated key one load entry', async () => {
  const loads: string[][] = [];
  const lookup = new BatchedLookup<number>(async (keys) => {
    loads.push(keys);
    return new Map(keys.filter((k) => k !== 'missing').map((k) => [k, k.length]));
  });
  const answers = await Promise.all(['a', 'bb', 'missing', 'a', 'cccc'].map((k) => lookup.get(k)));
  assert.deepEqual(answers, [1, 2, undefined, 1, 4]);
  assert.deepEqual(loads, [['a', 'bb', 'missing', 'cccc']]);
  assert.equal(await lookup.get('later'), 5, 'a later turn loads again');
  assert.equal(loads.length, 2);
});

test('a failed load fails every lookup it held, and the next turn loads afresh', async () => {
  let fail = true;
  const lookup = new BatchedLookup<string>(async (keys) => {
    if (fail) throw new Error('database gone');
    return new Map(keys.map((k) => [k, k]));
  });
  const settled = await Promise.allSettled([lookup.get('x'), lookup.get('y')]);
  assert.ok(settled.every((s) => s.status === 'rejected' && (s.reason as Error).message === 'database gone'));
  fail = false;
  assert.equal(await lookup.get('x'), 'x');
});

test('more keys than one statement takes are split, and every key is answered', async () => {
  const sizes: number[] = [];
  const lookup = new BatchedLookup<string>(async (keys) => {
    sizes.push(keys.length);
    return new Map(keys.map((k) => [k, k]));
  });
  const keys = Array.from({ length: 2500 }, (_, i) => `k${i}`);
  assert.deepEqual(await Promise.all(keys.map((k) => lookup.get(k))), keys);
  assert.deepEqual(sizes, [1000, 1000, 500]);
});
