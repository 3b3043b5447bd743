import { gunzipSync } from 'node:zlib';
import { uuidv7 } from 'uuidv7';
import { parseRowBatch, type WireRow } from '../src/protocol/batch.js';
import { PublisherDefaults } from '../src/protocol/constants.js';
import { buildRowBatch, rowBatchJson, wireRow, type BatchHead } from '../src/device/publisher/batching.js';
import { BetterSqlite3Driver } from '../src/device/driver/better-sqlite3-driver.js';
import { JournalReader, type RawJournalEntry } from '../src/device/journal/journal-reader.js';
import { encodeRowBatch } from '../src/transport/row-batch-encoding.js';

/** CPU µs per row of each stage of the drain that runs in JavaScript, measured one after another in this process. */
export interface DrainStages {
  /** Device: reading the journal in chunks (SQLite and the driver). */
  journal_read: number;
  /** Device: decoding entries, their wire values and the batch's JSON. */
  build_json: number;
  /** Device: gzip of the batch bodies (level 1, as the transports do). */
  gzip: number;
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
 * the server use, each stage over all rows before the next. What the end-to-end
 * drain's server CPU has beyond the server's two stages here is HTTP, the ledger
 * and lineage, and rendering the rows for COPY.
 */
export async function measureDrainStages(dbPath: string): Promise<DrainStages> {
  const db = BetterSqlite3Driver.open(dbPath);
  try {
    const reader = new JournalReader(db);
    let t = cpuUs();
    const entries: RawJournalEntry[] = [];
    for (let after = 0; ; ) {
      const chunk = await reader.readRaw(after, CHUNK);
      for (const entry of chunk) entries.push(entry);
      if (chunk.length < CHUNK) break;
      after = chunk[chunk.length - 1]!.seq;
    }
    const read = cpuUs() - t;
    const rows = entries.length;

    t = cpuUs();
    const bodies: { batch: ReturnType<typeof buildRowBatch>; json: string }[] = [];
    for (let from = 0; from < rows; from += PublisherDefaults.maxBatchRows) {
      const slice = entries.slice(from, from + PublisherDefaults.maxBatchRows);
      const schema = reader.schemaOf(slice[0]!);
      const head: BatchHead = { batchId: uuidv7(), epoch: uuidv7(), table: slice[0]!.table, key: schema.key, schemaHash: schema.hash, columns: schema.columns };
      const wire: WireRow[] = [];
      const jsons: string[] = [];
      for (const entry of slice) {
        const decoded = reader.decode(entry);
        const row = wireRow(entry.seq, entry.op, decoded.pk, decoded.row);
        wire.push(row);
        jsons.push(JSON.stringify(row));
      }
      const batch = buildRowBatch(head, wire);
      bodies.push({ batch, json: rowBatchJson(batch, jsons) });
    }
    const build = cpuUs() - t;

    t = cpuUs();
    const encoded = await Promise.all(bodies.map((b) => encodeRowBatch(b.batch, b.json, PublisherDefaults.compressAboveBytes)));
    const gzip = cpuUs() - t;

    t = cpuUs();
    const parsed = encoded.map((e) => JSON.parse((e.gzipped ? gunzipSync(e.body) : e.body).toString('utf8')) as unknown);
    const parse = cpuUs() - t;

    t = cpuUs();
    for (const body of parsed) parseRowBatch(body);
    const validate = cpuUs() - t;

    const perRow = (us: number) => Number((us / rows).toFixed(2));
    return { journal_read: perRow(read), build_json: perRow(build), gzip: perRow(gzip), gunzip_parse: perRow(parse), validate_decode: perRow(validate) };
  } finally {
    await db.close();
  }
}
