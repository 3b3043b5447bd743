import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { humanLine, jsonLine } from '../../src/cli/watch-command.js';
import type { ChangeEvent } from '../../src/device/change-stream/change-stream-event.js';

const at = Date.parse('2030-01-02T03:04:05.006Z');

describe('syncline watch output', () => {
  test('JSON lines carry wire-encoded values and leave out what an op does not have', () => {
    const event: ChangeEvent = {
      op: 'insert',
      table: 'items',
      key: { id: 9007199254740993n },
      after: { id: 9007199254740993n, price: 2, data: new Uint8Array([1, 2]), name: null },
      seq: 4,
      origin: 'local',
      at,
    };
    assert.deepEqual(JSON.parse(jsonLine(event)), {
      seq: 4,
      op: 'insert',
      table: 'items',
      key: { id: { $int: '9007199254740993' } },
      after: { id: { $int: '9007199254740993' }, price: { $real: '2' }, data: { $blob: 'AQI=' }, name: null },
      origin: 'local',
      at: '2030-01-02T03:04:05.006Z',
    });
  });

  test('human lines: an update with its old row shows only what changed', () => {
    const base = { table: 'items', key: { id: 1n }, seq: 7, origin: 'local' as const, at };
    assert.equal(
      humanLine({ ...base, op: 'update', before: { id: 1n, name: 'a', qty: 2n }, after: { id: 1n, name: 'b', qty: 2n } }),
      '#7 update   items [id=1] name: "a" -> "b"',
    );
    assert.equal(humanLine({ ...base, op: 'update', after: { id: 1n, name: 'b' } }), '#7 update   items [id=1] id=1 name="b"');
    assert.equal(humanLine({ ...base, op: 'delete' }), '#7 delete   items [id=1]');
    assert.equal(humanLine({ ...base, op: 'snapshot', after: { id: 1n, data: new Uint8Array([255]) } }), "#7 snapshot items [id=1] id=1 data=x'ff'");
  });
});
