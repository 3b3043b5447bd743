import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { changes } from '../../src/device/change-stream/change-stream.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { finished, spawnScript } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { APP, app, collect } from './change-stream-support.js';

describe('change stream: slow subscribers', () => {
  let dir: ReturnType<typeof tempDir>;
  before(() => {
    dir = tempDir('syncline-stream-overflow-');
  });
  after(() => dir.remove());

  test('a stalled subscriber is closed with subscriber_overflow; the writer and a fast subscriber carry on', async () => {
    const path = join(dir.path, 'overflow.db');
    await app(path, 'setup');
    const options = { db: path, tables: ['items'], maxBuffered: 50, pollIntervalMs: 10 } as const;
    const slow = await changes(options);
    const fast = await changes(options);
    let release: () => void = () => {};
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const slowSeen: ChangeEvent[] = [];
    const errors: Error[] = [];
    slow.on('error', (error) => errors.push(error));
    slow.on('change', async (event) => {
      slowSeen.push(event);
      await stuck;
    });

    const writer = finished(spawnScript(APP, [path, 'insert', '400', '1']));
    const events = await collect(fast, (seen) => seen.length === 400);
    const closedWith = await slow.closed;
    release();
    assert.equal((await writer).code, 0, 'the writer finished while a subscriber was stuck');
    assert.ok(isSynclineError(closedWith) && closedWith.code === 'subscriber_overflow', `closed with ${String(closedWith)}`);
    assert.equal(errors[0], closedWith, "the 'error' listener heard it");
    assert.equal(slowSeen.length, 1);
    assert.deepEqual(
      events.map((e) => e.key.id),
      Array.from({ length: 400 }, (_, i) => BigInt(i + 1)),
    );
  });

  test('a backlog larger than the buffer is paced, not an overflow', async () => {
    const path = join(dir.path, 'backlog.db');
    await app(path, 'setup');
    await (await changes({ db: path, tables: ['items'], checkpoint: 'batch' })).close();
    await app(path, 'insert', 300, 1);
    const events = await collect(await changes({ db: path, tables: ['items'], checkpoint: 'batch', maxBuffered: 16 }), (seen) => seen.length === 300);
    assert.equal(new Set(events.map((e) => e.key.id)).size, 300);
  });
});
