import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { uuidv7 } from 'uuidv7';
import { mosquittoPasswordHash, verifyMosquittoPassword } from '../../src/cloud/mqtt/mosquitto-password.js';
import { decodePayload } from '../../src/cloud/mqtt/payload.js';
import { parseControlAck, parseControlMessage, parseDownlink, type ControlMessage } from '../../src/protocol/control.js';
import { tempDir } from '../support/temp.js';

const control = (over: Partial<ControlMessage> = {}): ControlMessage =>
  ({
    type: 'pause_lineage',
    control_id: uuidv7(),
    lineage_id: '0190d8a4-1c7b-7cc2-9a8e-6f1d2e3c4b5a',
    source_table: 'items',
    reason: 'volume_backpressure',
    journal_epoch: uuidv7(),
    server_watermark: 42,
    issued_at: new Date().toISOString(),
    ...over,
  }) as ControlMessage;

describe('control messages', () => {
  test('pause and resume parse; their reasons must match their type', () => {
    const pause = control();
    assert.deepEqual(parseControlMessage(pause), pause);
    const resume = control({ type: 'resume_lineage', reason: 'backlog_drained' } as Partial<ControlMessage>);
    assert.deepEqual(parseControlMessage(resume), resume);
    assert.throws(() => parseControlMessage({ ...resume, reason: 'volume_backpressure' }), /control message/);
    assert.throws(() => parseControlMessage({ ...resume, server_watermark: -1 }), /server_watermark/);
    assert.throws(() => parseControlMessage({ ...resume, type: 'drop_table' }), /control message/);
  });

  test('downlink messages: acks, errors and controls', () => {
    const ack = { batch_id: uuidv7(), status: 'accepted', lineage_id: 'l', last_seq: 3, rows_applied: 3, rows_skipped: 0 };
    assert.deepEqual(parseDownlink({ type: 'batch_ack', ack }), { type: 'batch_ack', ack });
    assert.deepEqual(parseDownlink({ type: 'batch_error', batch_id: null, error: 'malformed_payload', message: 'x', status: 400 }).type, 'batch_error');
    assert.equal(parseDownlink(control()).type, 'pause_lineage');
    assert.throws(() => parseDownlink({ type: 'batch_ack' }));
  });

  test('control acks are strict', () => {
    const id = uuidv7();
    assert.deepEqual(parseControlAck({ control_id: id, status: 'stale' }), { control_id: id, status: 'stale' });
    assert.throws(() => parseControlAck({ control_id: id, status: 'applied', device_id: 'someone-else' }));
    assert.throws(() => parseControlAck({ control_id: 'not-a-uuid', status: 'applied' }));
  });
});

describe('MQTT payloads', () => {
  test('JSON or gzipped JSON, limited after decompression', async () => {
    const body = { hello: 'x'.repeat(5000) };
    assert.deepEqual((await decodePayload(Buffer.from(JSON.stringify(body)), 10_000)).json, body);
    assert.deepEqual((await decodePayload(gzipSync(JSON.stringify(body)), 10_000)).json, body);
    await assert.rejects(decodePayload(gzipSync(JSON.stringify(body)), 1000), /larger than 1000 bytes/);
    await assert.rejects(decodePayload(Buffer.from('{not json'), 1000), /not valid JSON/);
    await assert.rejects(decodePayload(Buffer.from([0x1f, 0x8b, 1, 2, 3]), 1000), /not valid gzip/);
  });
});

describe('Mosquitto password hashes', () => {
  test('our hash verifies our password and nothing else', () => {
    const hash = mosquittoPasswordHash('sld_secret');
    assert.match(hash, /^\$7\$101\$[A-Za-z0-9+/=]{16}\$[A-Za-z0-9+/=]{88}$/);
    assert.ok(verifyMosquittoPassword('sld_secret', hash));
    assert.ok(!verifyMosquittoPassword('sld_secreT', hash));
    assert.ok(!verifyMosquittoPassword('sld_secret', '$6$abc$def'));
  });

  test('mosquitto_passwd and we agree on the format', { skip: spawnSync('mosquitto_passwd', ['-h']).error ? 'mosquitto_passwd is not installed' : false }, () => {
    const dir = tempDir('syncline-passwd-');
    try {
      const file = join(dir.path, 'passwd');
      const made = spawnSync('mosquitto_passwd', ['-c', '-b', file, 'device', 'sld_their-hash']);
      assert.equal(made.status, 0, made.stderr.toString());
      const theirs = readFileSync(file, 'utf8').trim().split(':')[1]!;
      assert.ok(verifyMosquittoPassword('sld_their-hash', theirs));
    } finally {
      dir.remove();
    }
  });
});
