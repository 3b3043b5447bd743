import { copyFileSync, rmSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { uuidv7 } from 'uuidv7';
import { parseRowBatch, type WireRow } from '../src/protocol/batch.js';
import { PublisherDefaults } from '../src/protocol/constants.js';
import { buildRowBatch, rowBatchJson, wireRow, type BatchHead } from '../src/device/publisher/batching.js';
import { BetterSqlite3Driver } from '../src/device/driver/better-sqlite3-driver.js';
import { JournalReader, type RawJournalEntry } from '../src/device/journal/journal-reader.js';
import { recordAck } from '../src/device/publisher/publisher-commit.js';
import { encodeRowBatch } from '../src/transport/row-batch-encoding.js';

/** CPU µs per row of each stage of the drain that runs in JavaScript, measured one after another in this process. */
export interface DrainStages {
  /** Device: reading the journal in chunks (SQLite and the driver). */
  journal_read: number;
  /** Device: decoding entries, their wire values and the batch's JSON. */
  build_json: number;
  /** Device: gzip of the batch bodies (level 1, as the transports do). */
  gzip: number;
  /** Device: committing each ack (the cursor moves, the acked entries are pruned). */
  ack_commit: number;
  /** Server: gunzip and JSON.parse of the bodies. */
  gunzip_parse: number;
  /** Server: validating and decoding the rows (parseRowBatch). */
  validate_decode: number;
}

const CHUNK = 1024;

function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/**
 * Runs the drain's JavaScript stages on the journal at `dbPath` (read only, before
 * the drain ships it), with the same functions and batch sizes the publisher and
 * the server use, batch after batch, each batch through every stage and then
 * dropped (as in the drain: holding all rows at once would time the garbage
 * collector instead). What the end-to-end drain's server CPU has beyond the
 * server's two stages here is HTTP, the ledger and lineage, and rendering the
 * rows for COPY.
 */
export async function measureDrainStages(dbPath: string): Promise<DrainStages> {
  // A copy, since acks prune the journal the drain is about to ship.
  const copy = `${dbPath}.stages`;
  copyFileSync(dbPath, copy);
  const db = BetterSqlite3Driver.open(copy);
  try {
    const reader = new JournalReader(db);
    const spent = { read: 0, build: 0, gzip: 0, ack: 0, parse: 0, validate: 0 };
    let rows = 0;
    for (let after = 0, done = false; !done; ) {
      let t = cpuUs();
      const entries: RawJournalEntry[] = [];
      while (entries.length < PublisherDefaults.maxBatchRows) {
        const chunk = await reader.readRaw(after, CHUNK);
        for (const entry of chunk) entries.push(entry);
        if (chunk.length > 0) after = chunk[chunk.length - 1]!.seq;
        if (chunk.length < CHUNK) {
          done = true;
          break;
        }
      }
      spent.read += cpuUs() - t;
      if (entries.length === 0) break;
      rows += entries.length;

      t = cpuUs();
      const schema = reader.schemaOf(entries[0]!);
      const head: BatchHead = { batchId: uuidv7(), epoch: uuidv7(), table: entries[0]!.table, key: schema.key, schemaHash: schema.hash, columns: schema.columns };
      const wire: WireRow[] = [];
      const jsons: string[] = [];
      for (const entry of entries) {
        const decoded = reader.decode(entry);
        const row = wireRow(entry.seq, entry.op, decoded.pk, decoded.row);
        wire.push(row);
        jsons.push(JSON.stringify(row));
      }
      const batch = buildRowBatch(head, wire);
      const json = rowBatchJson(batch, jsons);
      spent.build += cpuUs() - t;

      t = cpuUs();
      const encoded = await encodeRowBatch(batch, json, PublisherDefaults.compressAboveBytes);
      spent.gzip += cpuUs() - t;

      t = cpuUs();
      const body = JSON.parse((encoded.gzipped ? gunzipSync(encoded.body) : encoded.body).toString('utf8')) as unknown;
      spent.parse += cpuUs() - t;

      t = cpuUs();
      parseRowBatch(body);
      spent.validate += cpuUs() - t;

      t = cpuUs();
      await recordAck(db, batch.source_table, batch.last_seq, batch.journal_epoch);
      spent.ack += cpuUs() - t;
    }
    const perRow = (us: number) => Number((us / rows).toFixed(2));
    return { journal_read: perRow(spent.read), build_json: perRow(spent.build), gzip: perRow(spent.gzip), ack_commit: perRow(spent.ack), gunzip_parse: perRow(spent.parse), validate_decode: perRow(spent.validate) };
  } finally {
    await db.close();
    rmSync(copy, { force: true });
  }
}
