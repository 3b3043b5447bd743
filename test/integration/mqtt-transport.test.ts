import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { Aedes } from 'aedes';
import pino from 'pino';
import { Agent } from '../../src/device/agent.js';
import { readCursors } from '../../src/device/journal/cursors.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import { readEpoch } from '../../src/device/journal/journal-state.js';
import type { WireRowBatch } from '../../src/protocol/batch.js';
import type { DownlinkMessage } from '../../src/protocol/control.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { deviceRoot, deviceTopic } from '../../src/protocol/topics.js';
import { MqttTransport } from '../../src/transport/mqtt-transport.js';
import { finished, spawnScript } from '../support/processes.js';
import { tempDir } from '../support/temp.js';

/**
 * The MQTT transport against a bare broker (aedes) standing in for the cloud: it
 * answers batches as each test scripts it, so the device's side of the protocol
 * is shown on its own: prune only on the application-level answer, resend what a
 * broker lost, keep the in-flight window, stop on a refused credential.
 */

const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));
const DEVICE = '0b7d7c8e-4f4a-4c61-9a53-0d7f2b1e9a10';
const TOKEN = 'sld_test-token-not-checked-by-this-broker-00000';
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });
const ROOT = deviceRoot('default', DEVICE);

async function app(dbPath: string, scenario: string, ...args: number[]): Promise<void> {
  const result = await finished(spawnScript(APP, [dbPath, scenario, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${scenario} failed: ${result.stderr}`);
}

type Policy = (batch: WireRowBatch, attempt: number) => 'ack' | 'drop';

class StubCloud {
  readonly deliveries: WireRowBatch[] = [];
  /** Batches published and not yet answered, sampled at each delivery. */
  readonly unanswered: number[] = [];
  policy: Policy = () => 'ack';
  password: string | undefined;
  #aedes!: Aedes;
  #server!: Server;
  #attempts = new Map<string, number>();
  #open = new Set<string>();

  async start(): Promise<string> {
    this.#aedes = await Aedes.createBroker();
    this.#aedes.authenticate = (_client, _username, password, done) => done(null, this.password === undefined || password?.toString() === this.password);
    await new Promise<void>((resolve) =>
      this.#aedes.subscribe(
        deviceTopic(ROOT, 'rowBatch'),
        (packet, callback) => {
          callback();
          const raw = packet.payload as Buffer;
          const batch = JSON.parse((raw[0] === 0x1f ? gunzipSync(raw) : raw).toString()) as WireRowBatch;
          this.deliveries.push(batch);
          this.#open.add(batch.batch_id);
          this.unanswered.push(this.#open.size);
          const attempt = (this.#attempts.get(batch.batch_id) ?? 0) + 1;
          this.#attempts.set(batch.batch_id, attempt);
          if (this.policy(batch, attempt) === 'drop') return;
          // Answer a moment later, so several batches can be in flight at once.
          setTimeout(() => {
            this.#open.delete(batch.batch_id);
            const answer: DownlinkMessage = { type: 'batch_ack', ack: { batch_id: batch.batch_id, status: attempt > 1 ? 'duplicate' : 'accepted', lineage_id: `l-${batch.source_table}`, last_seq: batch.last_seq, rows_applied: batch.rows.length, rows_skipped: 0 } };
            this.#aedes.publish({ cmd: 'publish', topic: deviceTopic(ROOT, 'control'), payload: Buffer.from(JSON.stringify(answer)), qos: 1, retain: false, dup: false }, () => {});
          }, 20);
        },
        resolve,
      ),
    );
    this.#server = createServer((socket) => this.#aedes.handle(socket));
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `mqtt://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('MQTT transport', () => {
  let dir: ReturnType<typeof tempDir>;
  let n = 0;
  before(() => {
    dir = tempDir('syncline-mqtt-transport-');
  });
  after(() => dir.remove());

  async function prepared(rows: number): Promise<string> {
    const path = join(dir.path, `db-${++n}.db`);
    await app(path, 'setup');
    await app(path, 'insert', rows, 1);
    return path;
  }

  async function withStub<T>(fn: (stub: StubCloud, url: string) => Promise<T>): Promise<T> {
    const stub = new StubCloud();
    const url = await stub.start();
    try {
      return await fn(stub, url);
    } finally {
      await stub.stop();
    }
  }

  function agent(path: string, transport: MqttTransport): Agent {
    return new Agent({ dbPath: path, transport, logger, once: true, onceDeadlineMs: 60_000, pollIntervalMs: 20, publisher: { maxBatchRows: 10, flushIntervalMs: 20, retryBaseMs: 5, retryMaxMs: 50 } });
  }

  test('a batch the broker took but the cloud never answered is sent again; the journal is pruned only after the answer', async () => {
    const path = await prepared(30);
    await withStub(async (stub, url) => {
      stub.policy = (_batch, attempt) => (attempt === 1 ? 'drop' : 'ack');
      const transport = new MqttTransport({ url, deviceId: DEVICE, token: TOKEN, ackTimeoutMs: 300, logger });
      try {
        await agent(path, transport).run();
      } finally {
        await transport.close();
      }
      const ids = stub.deliveries.map((b) => b.batch_id);
      const distinct = new Set(ids);
      assert.equal(ids.length, distinct.size * 2, 'every batch went out twice: the first copy was lost');
      const db = BetterSqlite3Driver.open(path);
      try {
        const epoch = await readEpoch(db);
        const cursors = await readCursors(db, epoch);
        const sentLast = new Map<string, number>();
        for (const b of stub.deliveries) sentLast.set(b.source_table, Math.max(sentLast.get(b.source_table) ?? 0, b.last_seq));
        for (const [table, last] of sentLast) assert.equal(cursors.get(table), last, table);
        const left = Number((await db.get<{ n: bigint }>('SELECT count(*) AS n FROM _syncline_journal'))!.n);
        assert.equal(left, 1, 'only the newest entry stays once everything is answered');
      } finally {
        await db.close();
      }
    });
  });

  test('the in-flight window bounds batches awaiting an answer', async () => {
    const path = await prepared(40);
    await withStub(async (stub, url) => {
      const transport = new MqttTransport({ url, deviceId: DEVICE, token: TOKEN, maxInFlight: 2, logger });
      try {
        const a = new Agent({ dbPath: path, transport, logger, once: true, onceDeadlineMs: 60_000, pollIntervalMs: 20, publisher: { maxBatchRows: 5, flushIntervalMs: 20, maxInFlight: 5 } });
        await a.run();
        assert.equal((await a.status()).pending_total, 0);
      } finally {
        await transport.close();
      }
      assert.ok(stub.deliveries.length > 10);
      assert.ok(Math.max(...stub.unanswered) <= 2, `at most 2 unanswered, saw ${Math.max(...stub.unanswered)}`);
      assert.ok(Math.max(...stub.unanswered) === 2, 'the window is used');
    });
  });

  test('a refused credential stops the agent with unauthorized instead of retrying forever', async () => {
    const path = await prepared(3);
    await withStub(async (stub, url) => {
      stub.password = 'the-right-one';
      const transport = new MqttTransport({ url, deviceId: DEVICE, token: TOKEN, logger });
      try {
        await assert.rejects(agent(path, transport).run(), (error: unknown) => isSynclineError(error) && error.code === 'unauthorized');
      } finally {
        await transport.close();
      }
      assert.equal(stub.deliveries.length, 0);
    });
  });
});
