import assert from 'node:assert/strict';
import { once } from 'node:events';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { DefaultPorts } from '../../src/protocol/constants.js';
import { freePort, portOpen } from '../support/mqtt-fixtures.js';
import { seedDataDir } from '../support/pglite-template.js';
import { createDeviceToken, finished, runSyncline, spawnScript, spawnSyncline, startServer, type ServerProcess } from '../support/processes.js';
import { assertMirrorMatches, lineages } from '../support/replication-check.js';
import { tempDir } from '../support/temp.js';

/** The MQTT flags of `syncline server` and `syncline agent`, as real processes on real sockets. */

const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));

describe('syncline server and agent over MQTT', () => {
  let dir: ReturnType<typeof tempDir>;
  let server: ServerProcess;
  let mqttPort: number;
  before(async () => {
    dir = tempDir('syncline-mqtt-cli-');
    mqttPort = await freePort();
    server = await startServer({ dataDir: join(dir.path, 'data'), extraArgs: ['--schema-policy', 'auto', '--mqtt-port', String(mqttPort)] });
  });
  after(async () => {
    await server.stop();
    dir.remove();
  });

  test('agent --transport mqtt --once drains a database through the embedded broker', async () => {
    const device = await createDeviceToken(server, 'cli-mqtt');
    const db = join(dir.path, 'app.db');
    for (const args of [['setup'], ['insert', '25', '1']]) assert.equal((await finished(spawnScript(APP, [db, ...args]))).code, 0);
    const run = await runSyncline(['agent', '--db', db, '--transport', 'mqtt', '--mqtt-url', `mqtt://127.0.0.1:${mqttPort}`, '--device-id', device.device_id, '--token', device.token, '--once', '--flush-interval-ms', '50']);
    assert.equal(run.code, 0, run.stderr);
    const status = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as { pending_total: number; rows_acked: number; paused: unknown[] };
    assert.equal(status.pending_total, 0);
    assert.ok(status.rows_acked > 0);
    assert.deepEqual(status.paused, []);
    const found = await lineages(server, device.device_id);
    assert.equal(found.length, 5);
    for (const lineage of found) await assertMirrorMatches(server, db, lineage);
  });

  test('the agent names what is missing for MQTT', async () => {
    const run = await runSyncline(['agent', '--db', join(dir.path, 'x.db'), '--transport', 'mqtt', '--token', 'sld_x']);
    assert.equal(run.code, 2);
    assert.match(run.stderr, /--mqtt-url/);
    const noId = await runSyncline(['agent', '--db', join(dir.path, 'x.db'), '--transport', 'mqtt', '--mqtt-url', 'mqtt://127.0.0.1:1', '--token', 'sld_x']);
    assert.equal(noId.code, 2);
    assert.match(noId.stderr, /--device-id/);
  });

  test(`the default broker port falls back to ${DefaultPorts.mqttFallback} when ${DefaultPorts.mqtt} is taken, and says so`, async (t) => {
    if (!(await portOpen(DefaultPorts.mqtt)) || (await portOpen(DefaultPorts.mqttFallback))) {
      t.skip(`needs ${DefaultPorts.mqtt} taken and ${DefaultPorts.mqttFallback} free`);
      return;
    }
    await seedDataDir(join(dir.path, 'fallback'));
    const child = spawnSyncline(['server', '--http-port', '0', '--data', join(dir.path, 'fallback')], { SYNCLINE_ADMIN_TOKEN: 'sla_test_fallback_token_123', SYNCLINE_MQTT_PORT: '', MQTT_URL: '', DATABASE_URL: '' });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    try {
      while (!/MQTT/.test(stdout)) {
        if (child.exitCode !== null) break;
        await Promise.race([once(child.stdout!, 'data'), once(child, 'exit')]);
      }
      assert.match(stdout, new RegExp(`MQTT broker listening on mqtt://127\\.0\\.0\\.1:${DefaultPorts.mqttFallback} \\(port ${DefaultPorts.mqtt} was taken\\)`));
    } finally {
      child.kill('SIGTERM');
      await finished(child);
    }
  });
});
