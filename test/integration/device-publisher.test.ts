import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { copyFileSync, existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import Database from 'better-sqlite3';
import pino from 'pino';
import { uuidv7 } from 'uuidv7';
import { Agent, type AgentOptions } from '../../src/device/agent.js';
import { ensureCapture } from '../../src/device/capture/capture.js';
import { readCursors } from '../../src/device/journal/cursors.js';
import { BetterSqlite3Driver } from '../../src/device/driver/better-sqlite3-driver.js';
import type { SqliteDriver } from '../../src/device/driver/sqlite-driver.js';
import { readEpoch } from '../../src/device/journal/journal-state.js';
import { parseRowBatch, type BatchAck, type WireRowBatch } from '../../src/protocol/batch.js';
import { isSynclineError } from '../../src/protocol/errors.js';
import { HttpTransport } from '../../src/transport/http-transport.js';
import { TransportError, type EncodedRowBatch, type Transport } from '../../src/transport/transport.js';
import { finished, spawnScript } from '../support/processes.js';
import { tempDir } from '../support/temp.js';

/**
 * The publisher against a real HTTP endpoint over a real socket. The endpoint is
 * a stand-in for the cloud's row-batch route that records every request and
 * answers as each test scripts it; the real cloud is covered end to end elsewhere.
 */

const APP = fileURLToPath(new URL('../support/sqlite-app.ts', import.meta.url));
const TOKEN = 'device-token-for-tests';
const logger = pino({ level: process.env.SYNCLINE_TEST_LOG_LEVEL ?? 'silent' });

async function app(dbPath: string, scenario: string, ...args: number[]): Promise<void> {
  const result = await finished(spawnScript(APP, [dbPath, scenario, ...args.map(String)]));
  assert.equal(result.code, 0, `app ${scenario} failed: ${result.stderr}`);
}

interface Received {
  batch: WireRowBatch;
  gzip: boolean;
  authorization: string | undefined;
}

/** `text` is sent as is (a captive portal's page); `body` as JSON. */
type Answer = { status: number; body?: unknown; text?: string } | 'hang';
type Policy = (batch: WireRowBatch, attempt: number) => Answer;

const ackBody = (batch: WireRowBatch) => ({ batch_id: batch.batch_id, status: 'accepted', lineage_id: `lineage-${batch.source_table}`, last_seq: batch.last_seq, rows_applied: batch.rows.length, rows_skipped: 0 });
const ack = (batch: WireRowBatch): Answer => ({ status: 200, body: ackBody(batch) });
const reject = (status: number, error: string): Answer => ({ status, body: { error, message: `${error} (scripted)`, context: {} } });

class Endpoint {
  readonly received: Received[] = [];
  readonly #attempts = new Map<string, number>();
  readonly #answers = new Map<Received, number>();
  readonly #server: Server;
  policy: Policy = ack;

  constructor() {
    this.#server = createServer((req, res) => this.#handle(req, res));
  }

  async listen(port = 0): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(port, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** Batches the endpoint acked, in the order it acked them (from the `from`-th request on). */
  acked(from = 0): WireRowBatch[] {
    return this.received.slice(from).filter((r) => this.#answers.get(r) === 200).map((r) => r.batch);
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const gzip = req.headers['content-encoding'] === 'gzip';
      const batch = JSON.parse((gzip ? gunzipSync(raw) : raw).toString()) as WireRowBatch;
      const received: Received = { batch, gzip, authorization: req.headers.authorization };
      this.received.push(received);
      const attempt = (this.#attempts.get(batch.batch_id) ?? 0) + 1;
      this.#attempts.set(batch.batch_id, attempt);
      const answer = this.policy(batch, attempt);
      if (answer === 'hang') return;
      this.#answers.set(received, answer.status);
      res.writeHead(answer.status, { 'content-type': answer.text === undefined ? 'application/json' : 'text/html' }).end(answer.text ?? JSON.stringify(answer.body ?? {}));
    });
  }
}

/**
 * A transport that logs what the publisher asks of it, in order, to check how
 * encoding, sending and acks interleave. It answers after `delayMs`, or when
 * `awaitNext` after the table's next batch was encoded (at most a second later),
 * so a slow machine cannot make the lookahead look late. The first attempt of
 * every batch whose first seq is in `failFirst` fails (retryable).
 */
class RecordingTransport implements Transport {
  readonly log: { event: 'encode' | 'send' | 'ack'; batch: WireRowBatch }[] = [];
  readonly bodies = new Map<string, Buffer[]>();
  readonly #inFlight = new Set<string>();
  readonly #delayMs: number;
  readonly #failFirst: Set<number>;
  readonly #awaitNext: boolean;

  constructor(delayMs: number, options: { failFirst?: readonly number[]; awaitNext?: boolean } = {}) {
    this.#delayMs = delayMs;
    this.#failFirst = new Set(options.failFirst);
    this.#awaitNext = options.awaitNext ?? false;
  }

  async encodeRowBatch(batch: WireRowBatch, json = JSON.stringify(batch)): Promise<EncodedRowBatch> {
    this.log.push({ event: 'encode', batch });
    return { batch, body: Buffer.from(json), gzipped: false, jsonBytes: Buffer.byteLength(json) };
  }

  async #nextEncoded(after: WireRowBatch): Promise<void> {
    const giveUp = Date.now() + 1000;
    const seen = () => this.log.some((e) => e.event === 'encode' && e.batch.source_table === after.source_table && e.batch.first_seq > after.last_seq);
    while (!seen() && Date.now() < giveUp) await new Promise((resolve) => setTimeout(resolve, 5));
  }

  async sendRowBatch(encoded: EncodedRowBatch): Promise<BatchAck> {
    const { batch } = encoded;
    assert.ok(!this.#inFlight.has(batch.source_table), `${batch.source_table}: a second batch in flight`);
    this.#inFlight.add(batch.source_table);
    this.log.push({ event: 'send', batch });
    const bodies = this.bodies.get(batch.batch_id) ?? [];
    this.bodies.set(batch.batch_id, [...bodies, encoded.body]);
    try {
      await new Promise((resolve) => setTimeout(resolve, this.#delayMs));
      if (this.#awaitNext) await this.#nextEncoded(batch);
      if (bodies.length === 0 && this.#failFirst.has(batch.first_seq)) throw new TransportError('scripted outage', { retryable: true });
      this.log.push({ event: 'ack', batch });
      return { batch_id: batch.batch_id, status: 'accepted', lineage_id: 'l', last_seq: batch.last_seq, rows_applied: batch.rows.length, rows_skipped: 0 };
    } finally {
      this.#inFlight.delete(batch.source_table);
    }
  }

  acked(): WireRowBatch[] {
    return this.log.filter((e) => e.event === 'ack').map((e) => e.batch);
  }

  indexOf(event: 'encode' | 'ack', batch: WireRowBatch): number {
    return this.log.findIndex((e) => e.event === event && e.batch.batch_id === batch.batch_id);
  }
}

function agent(dbPath: string, url: string, extra: Partial<AgentOptions> = {}): Agent {
  return new Agent({
    dbPath,
    transport: new HttpTransport({ serverUrl: url, token: TOKEN, requestTimeoutMs: 2000 }),
    logger,
    once: true,
    onceDeadlineMs: 60_000,
    pollIntervalMs: 20,
    ...extra,
    publisher: { retryBaseMs: 5, retryMaxMs: 50, flushIntervalMs: 50, ...extra.publisher },
  });
}

async function journalRows(db: SqliteDriver): Promise<{ seq: number; tbl: string }[]> {
  const rows = await db.all<{ seq: bigint; tbl: string }>('SELECT seq, tbl FROM _syncline_journal JOIN _syncline_schemas ON _syncline_schemas.id = schema_id ORDER BY seq');
  return rows.map((r) => ({ seq: Number(r.seq), tbl: r.tbl }));
}

/** Every acked batch is valid for the protocol parser, and per table the acked seqs are strictly increasing. */
function assertOrderedAndValid(batches: WireRowBatch[]): Map<string, number[]> {
  const perTable = new Map<string, number[]>();
  for (const batch of batches) {
    parseRowBatch(JSON.parse(JSON.stringify(batch)));
    const seqs = perTable.get(batch.source_table) ?? [];
    for (const row of batch.rows) {
      assert.ok(seqs.length === 0 || row.seq > seqs.at(-1)!, `${batch.source_table}: seq ${row.seq} after ${seqs.at(-1)}`);
      seqs.push(row.seq);
    }
    perTable.set(batch.source_table, seqs);
  }
  return perTable;
}

describe('publisher over HTTP', () => {
  let dir: ReturnType<typeof tempDir>;
  let n = 0;
  before(() => {
    dir = tempDir('syncline-publisher-');
  });
  after(() => dir.remove());

  /** A fresh app database with capture installed and `rows` steps written; returns the journal as captured. */
  async function prepared(rows: number): Promise<{ path: string; journal: { seq: number; tbl: string }[] }> {
    const path = join(dir.path, `db-${++n}.db`);
    await app(path, 'setup');
    await app(path, 'insert', rows, 1);
    const db = BetterSqlite3Driver.open(path);
    try {
      await ensureCapture(db);
      await app(path, 'update', Math.ceil(rows / 2), 1);
      await app(path, 'delete', 2, 1);
      return { path, journal: await journalRows(db) };
    } finally {
      await db.close();
    }
  }

  test('once: every entry is acked in order, cursors advance and acked entries are pruned', async () => {
    const { path, journal } = await prepared(40);
    const endpoint = new Endpoint();
    const url = await endpoint.listen();
    try {
      const a = agent(path, url, { publisher: { maxBatchRows: 16 } });
      await a.run();
      const perTable = assertOrderedAndValid(endpoint.acked());
      for (const table of new Set(journal.map((e) => e.tbl))) {
        assert.deepEqual(perTable.get(table), journal.filter((e) => e.tbl === table).map((e) => e.seq), table);
      }
      assert.ok(endpoint.received.every((r) => r.authorization === `Bearer ${TOKEN}`));
      assert.ok(endpoint.received.some((r) => r.gzip), 'large bodies travel gzipped');
      assert.ok(endpoint.acked().every((b) => b.rows.length <= 16));
      const status = await a.status();
      assert.equal(status.pending_total, 0);
      assert.equal(status.running, false);
      const db = BetterSqlite3Driver.open(path);
      try {
        const epoch = await readEpoch(db);
        const cursors = await readCursors(db, epoch);
        for (const table of new Set(journal.map((e) => e.tbl))) assert.equal(cursors.get(table), Math.max(...journal.filter((e) => e.tbl === table).map((e) => e.seq)));
        assert.deepEqual(await journalRows(db), [journal.at(-1)], 'only the newest entry stays');
        assert.ok(existsSync(`${path}.syncline-epoch`));
      } finally {
        await db.close();
      }
    } finally {
      await endpoint.close();
    }
  });

  test('a schema change mid-stream: each batch carries one schema and the refreshed row has the new column', async () => {
    const { path } = await prepared(6);
    await app(path, 'add-nullable-column');
    const endpoint = new Endpoint();
    const url = await endpoint.listen();
    try {
      await agent(path, url).run();
      const items = endpoint.acked().filter((b) => b.source_table === 'items');
      const hashes = items.map((b) => b.schema.hash);
      assert.equal(new Set(hashes).size, 2);
      assert.equal(hashes.findIndex((h) => h === hashes.at(-1)), hashes.lastIndexOf(hashes[0]!) + 1, 'old schema first, then the new one');
      const last = items.at(-1)!;
      assert.ok(last.schema.columns.some((c) => c.name === 'memo'));
      const refreshed = last.rows.find((r) => r.pk[0] === 900002)!;
      assert.equal(refreshed.op, 'update');
      assert.equal(refreshed.row!.at(-1), 'fresh');
    } finally {
      await endpoint.close();
    }
  });

  test('5xx answers and timeouts: the same batch is retried with the same id and nothing is reordered', async () => {
    const { path, journal } = await prepared(20);
    const endpoint = new Endpoint();
    endpoint.policy = (batch, attempt) => {
      if (attempt === 1) return reject(503, 'unavailable');
      if (attempt === 2) return batch.source_table === 'items' ? 'hang' : reject(502, 'internal');
      return ack(batch);
    };
    const url = await endpoint.listen();
    try {
      await agent(path, url, { publisher: { maxBatchRows: 8 }, transport: new HttpTransport({ serverUrl: url, token: TOKEN, requestTimeoutMs: 300 }) }).run();
      const perTable = assertOrderedAndValid(endpoint.acked());
      assert.deepEqual([...perTable.values()].flat().sort((a, b) => a - b), journal.map((e) => e.seq));
      const byId = new Map<string, string[]>();
      for (const r of endpoint.received) byId.set(r.batch.batch_id, [...(byId.get(r.batch.batch_id) ?? []), JSON.stringify(r.batch)]);
      for (const [id, bodies] of byId) {
        assert.ok(bodies.length >= 3, `batch ${id} was retried`);
        assert.ok(bodies.every((b) => b === bodies[0]), 'a retry resends the identical batch');
      }
    } finally {
      await endpoint.close();
    }
  });

  /** 2xx answers that are not the ack of the batch sent (a captive portal, a proxy, a confused server). */
  const notAcks: ((batch: WireRowBatch) => Answer)[] = [
    (batch) => ({ status: 200, body: { ...ackBody(batch), batch_id: uuidv7() } }),
    (batch) => ({ status: 200, body: { ...ackBody(batch), status: 'stored' } }),
    (batch) => ({ status: 200, body: { ...ackBody(batch), last_seq: String(batch.last_seq) } }),
    () => ({ status: 200, text: '<html><body>Sign in to the hotel Wi-Fi</body></html>' }),
  ];

  test('a 2xx that is not the ack of the batch sent acknowledges nothing: the same batch is sent again until a real ack', async () => {
    const { path, journal } = await prepared(12);
    const endpoint = new Endpoint();
    const ackedIds: string[] = [];
    endpoint.policy = (batch, attempt) => {
      if (attempt <= notAcks.length) return notAcks[attempt - 1]!(batch);
      ackedIds.push(batch.batch_id);
      return ack(batch);
    };
    const url = await endpoint.listen();
    try {
      await agent(path, url, { publisher: { maxBatchRows: 8 } }).run();
      const byId = new Map<string, string[]>();
      for (const r of endpoint.received) byId.set(r.batch.batch_id, [...(byId.get(r.batch.batch_id) ?? []), JSON.stringify(r.batch)]);
      for (const [id, bodies] of byId) {
        assert.equal(bodies.length, notAcks.length + 1, `batch ${id} was sent once per answer that was not its ack, then once more`);
        assert.ok(bodies.every((b) => b === bodies[0]), 'a retry resends the identical batch');
      }
      const perTable = assertOrderedAndValid(ackedIds.map((id) => endpoint.received.find((r) => r.batch.batch_id === id)!.batch));
      assert.deepEqual([...perTable.values()].flat().sort((a, b) => a - b), journal.map((e) => e.seq));
    } finally {
      await endpoint.close();
    }
  });

  test('a server that only ever answers 2xx without the ack: the agent gives up with the reason and the journal keeps every entry', async () => {
    const { path, journal } = await prepared(5);
    const endpoint = new Endpoint();
    endpoint.policy = (batch, attempt) => notAcks[(attempt - 1) % notAcks.length]!(batch);
    const url = await endpoint.listen();
    try {
      await assert.rejects(agent(path, url, { publisher: { maxAttempts: notAcks.length } }).run(), (error: unknown) => {
        assert.ok(isSynclineError(error) && error.code === 'transport_failed', String(error));
        assert.match(error.message, /server answered 200 without an ack for batch [0-9a-f-]{36}: the body is not JSON/);
        return true;
      });
      const db = BetterSqlite3Driver.open(path);
      try {
        assert.deepEqual(await journalRows(db), journal, 'nothing was pruned');
        const cursors = await readCursors(db, await readEpoch(db));
        for (const table of new Set(journal.map((e) => e.tbl))) {
          assert.ok((cursors.get(table) ?? 0) < journal.find((e) => e.tbl === table)!.seq, `${table}: the cursor stays below its first entry`);
        }
      } finally {
        await db.close();
      }
    } finally {
      await endpoint.close();
    }
  });

  test('a 400 rejection quarantines that batch and the table carries on; a row-level rejection isolates the row', async () => {
    const { path } = await prepared(12);
    const endpoint = new Endpoint();
    let kvRejected = false;
    endpoint.policy = (batch) => {
      if (batch.source_table === 'kv' && !kvRejected) {
        kvRejected = true;
        return reject(400, 'invalid_batch');
      }
      if (batch.source_table === 'items' && batch.rows.some((r) => r.pk[0] === 7)) return reject(400, 'invalid_number_encoding');
      return ack(batch);
    };
    const url = await endpoint.listen();
    try {
      await agent(path, url, { publisher: { maxBatchRows: 6 } }).run();
      const db = BetterSqlite3Driver.open(path);
      try {
        const quarantined = await db.all<{ tbl: string; error_code: string; first_seq: bigint; last_seq: bigint; batch: string }>('SELECT tbl, error_code, first_seq, last_seq, batch FROM _syncline_quarantine ORDER BY id');
        assert.deepEqual(quarantined.map((q) => [q.tbl, q.error_code]).sort(), [['items', 'invalid_number_encoding'], ['kv', 'invalid_batch']]);
        const itemRows = quarantined.filter((q) => q.tbl === 'items').map((q) => JSON.parse(q.batch) as WireRowBatch);
        assert.ok(itemRows.every((b) => b.rows.length === 1 && b.rows[0]!.pk[0] === 7), 'only the rows of item 7 are set aside');
        const acked = endpoint.acked();
        assert.ok(acked.some((b) => b.source_table === 'kv'), 'later kv batches got through');
        assert.equal(acked.filter((b) => b.source_table === 'items').flatMap((b) => b.rows).filter((r) => r.pk[0] === 7).length, 0);
        assert.equal(acked.filter((b) => b.source_table === 'items').flatMap((b) => b.rows).filter((r) => r.pk[0] === 8).length, 1);
      } finally {
        await db.close();
      }
    } finally {
      await endpoint.close();
    }
  });

  test('a journal entry that cannot be decoded is quarantined with the reason; the rest of its table is sent', async () => {
    const { path, journal } = await prepared(12);
    const items = journal.filter((e) => e.tbl === 'items').map((e) => e.seq);
    const bad = items[5]!;
    const db = BetterSqlite3Driver.open(path);
    await db.run("UPDATE _syncline_journal SET op = 'X' WHERE seq = ?", [bad]);
    await db.close();
    const endpoint = new Endpoint();
    const url = await endpoint.listen();
    try {
      const a = agent(path, url, { publisher: { maxBatchRows: 4 } });
      await a.run();
      assert.equal((await a.status()).quarantined, 1);
      const check = BetterSqlite3Driver.open(path);
      try {
        const quarantined = await check.all<{ tbl: string; error_code: string; message: string; first_seq: bigint; last_seq: bigint }>('SELECT tbl, error_code, message, first_seq, last_seq FROM _syncline_quarantine');
        assert.deepEqual(quarantined.map((q) => [q.tbl, q.error_code, Number(q.first_seq), Number(q.last_seq)]), [['items', 'journal_corrupt', bad, bad]]);
        assert.match(quarantined[0]!.message, /unknown op "X"/);
      } finally {
        await check.close();
      }
      const sent = assertOrderedAndValid(endpoint.acked()).get('items');
      assert.deepEqual(sent, items.filter((seq) => seq !== bad), 'every other items entry went out, in order');
    } finally {
      await endpoint.close();
    }
  });

  test('413 splits the batch until it fits; a single row that is too big is quarantined', async () => {
    const { path, journal } = await prepared(30);
    const huge = journal.find((e) => e.tbl === 'log_lines')!.seq;
    const endpoint = new Endpoint();
    endpoint.policy = (batch) => (batch.rows.length > 5 || batch.rows.some((r) => r.seq === huge) ? reject(413, 'payload_too_large') : ack(batch));
    const url = await endpoint.listen();
    try {
      const a = agent(path, url, { publisher: { maxBatchRows: 40 } });
      await a.run();
      const acked = endpoint.acked();
      assert.ok(acked.every((b) => b.rows.length <= 5));
      const delivered = acked.flatMap((b) => b.rows.map((r) => r.seq)).sort((x, y) => x - y);
      assert.deepEqual(delivered, journal.map((e) => e.seq).filter((seq) => seq !== huge));
      assert.equal((await a.status()).quarantined, 1);
    } finally {
      await endpoint.close();
    }
  });

  test('a table\'s next batch is prepared while one is in flight, and sent only after the ack, retries included', async () => {
    const { path, journal } = await prepared(30);
    const firstSeqs = journal.filter((_, i) => i % 7 === 0).map((e) => e.seq);
    const transport = new RecordingTransport(5, { failFirst: firstSeqs, awaitNext: true });
    await agent(path, 'http://unused', { transport, publisher: { maxBatchRows: 4, maxInFlight: 8 } }).run();
    const acked = transport.acked();
    const perTable = assertOrderedAndValid(acked);
    for (const table of new Set(journal.map((e) => e.tbl))) {
      assert.deepEqual(perTable.get(table), journal.filter((e) => e.tbl === table).map((e) => e.seq), table);
      const batches = acked.filter((b) => b.source_table === table);
      for (let i = 1; i < batches.length; i++) {
        assert.ok(transport.indexOf('encode', batches[i]!) < transport.indexOf('ack', batches[i - 1]!), `${table}: batch ${i} was ready before the one before it was acked`);
      }
    }
    const retried = [...transport.bodies.values()].filter((bodies) => bodies.length > 1);
    assert.ok(retried.length > 0, 'some batches were retried');
    for (const bodies of retried) assert.ok(bodies.every((b) => b.equals(bodies[0]!)), 'a retry resends the identical bytes');
  });

  test('an ack that cannot be recorded loses nothing: the next ack\'s commit covers its entries', async () => {
    const { path, journal } = await prepared(30);
    // Another connection holds SQLite's write lock from the first send to the third, so the acks of the first
    // batches cannot be recorded (busy) while the table's next batches already go out behind them.
    const blocker = new Database(path);
    let sends = 0;
    const inner = new RecordingTransport(5);
    const transport: Transport = {
      encodeRowBatch: (batch, json) => inner.encodeRowBatch(batch, json),
      sendRowBatch: async (encoded) => {
        sends += 1;
        if (sends === 1) blocker.exec('BEGIN IMMEDIATE');
        if (sends === 3) blocker.exec('COMMIT');
        return inner.sendRowBatch(encoded);
      },
    };
    const a = agent(path, 'http://unused', { transport, busyTimeoutMs: 20, publisher: { maxBatchRows: 4, maxInFlight: 1 } });
    try {
      await a.run();
    } finally {
      if (blocker.inTransaction) blocker.exec('COMMIT');
      blocker.close();
    }
    // Entries whose ack was not recorded may go out again (the cloud answers duplicate); none is missing.
    for (const table of new Set(journal.map((e) => e.tbl))) {
      const acked = new Set(inner.acked().filter((b) => b.source_table === table).flatMap((b) => b.rows.map((r) => r.seq)));
      assert.deepEqual([...acked].sort((x, y) => x - y), journal.filter((e) => e.tbl === table).map((e) => e.seq), table);
    }
    assert.match((await a.status()).last_error ?? '', /busy|locked/i, 'an ack could not be recorded');
    const db = BetterSqlite3Driver.open(path);
    try {
      const cursors = await readCursors(db, await readEpoch(db));
      for (const table of new Set(journal.map((e) => e.tbl))) assert.equal(cursors.get(table), Math.max(...journal.filter((e) => e.tbl === table).map((e) => e.seq)));
      assert.deepEqual(await journalRows(db), [journal.at(-1)], 'only the newest entry stays');
    } finally {
      await db.close();
    }
  });

  test('a table with a backlog takes turns with the tables waiting for a delivery slot', async () => {
    const { path } = await prepared(3);
    await app(path, 'bulk', 200, 5000);
    const transport = new RecordingTransport(2);
    await agent(path, 'http://unused', { transport, publisher: { maxBatchRows: 4, maxInFlight: 1 } }).run();
    const acked = transport.acked();
    const lastItems = acked.findLastIndex((b) => b.source_table === 'items');
    for (const table of new Set(acked.map((b) => b.source_table))) {
      assert.ok(acked.findIndex((b) => b.source_table === table) < lastItems, `${table} was not held up by the items backlog`);
    }
  });

  test('401 stops the agent with a clear error and keeps the journal', async () => {
    const { path, journal } = await prepared(5);
    const endpoint = new Endpoint();
    endpoint.policy = () => reject(401, 'unauthorized');
    const url = await endpoint.listen();
    try {
      await assert.rejects(agent(path, url, { once: false }).run(), (error: unknown) => isSynclineError(error) && error.code === 'unauthorized' && /device token/.test(error.message));
      const db = BetterSqlite3Driver.open(path);
      try {
        assert.deepEqual(await journalRows(db), journal);
      } finally {
        await db.close();
      }
    } finally {
      await endpoint.close();
    }
  });

  test('once rejects when the server cannot be reached within the retry budget', async () => {
    const { path } = await prepared(2);
    const endpoint = new Endpoint();
    const url = await endpoint.listen();
    await endpoint.close();
    await assert.rejects(agent(path, url, { publisher: { maxAttempts: 3 } }).run(), (error: unknown) => isSynclineError(error) && error.code === 'transport_failed');
  });

  test('server down, app keeps writing, server up: the agent catches up, nothing is lost, and it reports the drain', async () => {
    const { path } = await prepared(5);
    const endpoint = new Endpoint();
    const url = await endpoint.listen();
    const port = Number(new URL(url).port);
    await endpoint.close();
    const stop = new AbortController();
    let drains = 0;
    const running = agent(path, url, { once: false, onDrained: () => drains++ }).run(stop.signal);
    const later = new Endpoint();
    try {
      await app(path, 'insert', 10, 100);
      const db = BetterSqlite3Driver.open(path);
      const expected = (await journalRows(db)).map((e) => e.seq);
      await db.close();
      await later.listen(port);
      const ackedSeqs = () => new Set(later.acked().flatMap((b) => b.rows.map((r) => r.seq)));
      const giveUp = Date.now() + 60_000;
      while (!expected.every((seq) => ackedSeqs().has(seq))) {
        assert.ok(Date.now() < giveUp, 'the agent did not catch up');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // Once the backlog is shipped the agent says so (the CLI releases the burst's memory then).
      while (drains === 0) {
        assert.ok(Date.now() < giveUp, 'the agent did not report the drained journal');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      stop.abort();
      await running;
      assertOrderedAndValid(later.acked());
    } finally {
      stop.abort();
      await running.catch(() => {});
      await later.close();
    }
  });

  test('409 stale_epoch: a new epoch with a fresh snapshot is started and sent', async () => {
    const { path } = await prepared(4);
    const db = BetterSqlite3Driver.open(path);
    const firstEpoch = await readEpoch(db);
    await db.close();
    const endpoint = new Endpoint();
    endpoint.policy = (batch) => (batch.journal_epoch === firstEpoch ? reject(409, 'stale_epoch') : ack(batch));
    const url = await endpoint.listen();
    try {
      const a = agent(path, url);
      await a.run();
      const acked = endpoint.acked();
      assert.ok(acked.length > 0 && acked.every((b) => b.journal_epoch !== firstEpoch));
      assert.ok(acked.some((b) => b.rows.some((r) => r.op === 'snapshot')));
      assert.equal((await a.status()).epoch_rotations, 1);
      assert.equal((await a.status()).pending_total, 0);
    } finally {
      await endpoint.close();
    }
  });

  test('a database restored from a backup is detected by its sidecar and gets a new epoch', async () => {
    const { path } = await prepared(3);
    const backup = `${path}.backup`;
    const db = BetterSqlite3Driver.open(path);
    await db.exec(`VACUUM INTO '${backup.replaceAll("'", "''")}'`);
    const epoch = await readEpoch(db);
    await db.close();
    const endpoint = new Endpoint();
    const url = await endpoint.listen();
    try {
      await agent(path, url).run();
      assert.ok(endpoint.acked().every((b) => b.journal_epoch === epoch));
      rmSync(`${path}-wal`, { force: true });
      rmSync(`${path}-shm`, { force: true });
      copyFileSync(backup, path);
      await app(path, 'insert', 2, 500);
      const sent = endpoint.received.length;
      await agent(path, url).run();
      const restored = endpoint.acked(sent);
      assert.ok(restored.length > 0 && restored.every((b) => b.journal_epoch !== epoch), 'the restored file publishes under a new epoch');
      assert.ok(restored.some((b) => b.rows.some((r) => r.op === 'snapshot')), 'with a fresh snapshot');
    } finally {
      await endpoint.close();
    }
  });
});
