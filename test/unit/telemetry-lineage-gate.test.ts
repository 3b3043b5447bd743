import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LineageGate } from '../../src/cloud/telemetry/telemetry-group.js';

/**
 * The gate's memory of lineages is bounded, and a lineage it forgot still has its
 * batches ordered: the store's cursor stands in for what it remembered. "The
 * store" here is the seqs the gate's batches stored, per lineage and epoch.
 */

/** Batches as the gate lets them through, and the last seq each lineage's epoch holds once they ran. */
function lineages(gate: LineageGate) {
  const stored = new Map<string, number>();
  const ran: string[] = [];
  const asked: string[] = [];
  const send = (key: string, epoch: string, first: number, last: number, after?: number) => {
    const order = {
      epoch,
      after,
      last,
      stored: async () => {
        asked.push(`${key}:${first}`);
        return stored.get(`${key}/${epoch}`) ?? 0;
      },
    };
    return gate.run(key, order, async () => {
      ran.push(`${key}:${first}-${last}`);
      stored.set(`${key}/${epoch}`, last);
    });
  };
  return { send, ran, asked };
}

const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` and says how long it took. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

test('many lineages, some pipelining: the gate remembers at most its capacity, the most recent ones', async () => {
  const gate = new LineageGate(64);
  const { send, asked } = lineages(gate);
  // 5,000 devices, each a batch then one sent behind it: every lineage passes through once, never to come back.
  for (let wave = 0; wave < 50; wave++) {
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const key = `d${wave * 100 + i}`;
        await send(key, 'e1', 1, 4);
        await send(key, 'e1', 5, 8, 4);
      }),
    );
    assert.ok(gate.remembered <= 64, `remembered ${gate.remembered} after wave ${wave}`);
  }
  assert.equal(gate.remembered, 64);
  const before = asked.length;
  await send('d4999', 'e1', 9, 12, 8);
  assert.equal(asked.length, before, 'the most recent lineage is remembered');
  await send('d0', 'e1', 9, 12, 8);
  assert.deepEqual(asked.slice(before), ['d0:9'], 'a lineage forgotten long ago asks the store');
});

test('a forgotten lineage: a batch overtaking its predecessor still waits for it; one whose predecessor is stored goes at once', { timeout: 20_000 }, async () => {
  const gate = new LineageGate(4);
  const { send, ran, asked } = lineages(gate);
  await send('a', 'e1', 1, 4);
  for (let i = 0; i < 10; i++) await send(`other${i}`, 'e1', 1, 4);
  assert.equal(gate.remembered, 4);
  // 9-12 (behind 5-8) reaches the gate first; the store holds up to 4, so it waits for 5-8, which arrives 100 ms later.
  const overtaking = timed(() => send('a', 'e1', 9, 12, 8));
  await later(100);
  await send('a', 'e1', 5, 8, 4);
  const waited = await overtaking;
  assert.deepEqual(ran.filter((r) => r.startsWith('a:')), ['a:1-4', 'a:5-8', 'a:9-12']);
  assert.ok(waited >= 90 && waited < 900, `released by its predecessor, not by the hold's end: ${waited} ms`);
  // Forgotten again; 13-16's predecessor is stored, so it does not wait for it.
  for (let i = 0; i < 10; i++) await send(`more${i}`, 'e1', 1, 4);
  const before = asked.length;
  const took = await timed(() => send('a', 'e1', 13, 16, 12));
  assert.deepEqual(asked.slice(before), ['a:13']);
  assert.ok(took < 500, `${took} ms`);
  // A predecessor that never comes: the batch waits a while, then goes on (the store answers it telemetry_too_early).
  const stuck = await timed(() => send('a', 'e1', 25, 28, 24));
  assert.ok(stuck >= 900 && stuck < 5000, `${stuck} ms`);
});

test('a new epoch starts over: its batch overtaking its predecessor waits though the old epoch reached further', { timeout: 20_000 }, async () => {
  const gate = new LineageGate(4);
  const { send, ran } = lineages(gate);
  await send('a', 'old', 1, 100);
  const overtaking = timed(() => send('a', 'new', 5, 8, 4));
  await later(100);
  await send('a', 'new', 1, 4);
  const waited = await overtaking;
  assert.deepEqual(ran, ['a:1-100', 'a:1-4', 'a:5-8']);
  assert.ok(waited >= 90 && waited < 900, `${waited} ms`);
});
