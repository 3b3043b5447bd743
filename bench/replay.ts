import { uuidv7 } from 'uuidv7';
import { createDevice, authenticateDevice, type DeviceIdentity } from '../src/cloud/auth/devices.js';
import { approveReview } from '../src/cloud/governance/approve.js';
import { mirrorUnlessIgnored } from '../src/cloud/governance/column-plan.js';
import { governancePolicy, type GovernancePolicy } from '../src/cloud/governance/policy.js';
import { replayLineage } from '../src/cloud/governance/replay.js';
import { claimReview } from '../src/cloud/governance/review-actions.js';
import { openReviewOf } from '../src/cloud/governance/reviews.js';
import { ingestRowBatch } from '../src/cloud/ingest/ingest-row-batch.js';
import { openStore } from '../src/cloud/store/open-store.js';
import type { Store } from '../src/cloud/store/store.js';
import { parseRowBatch, type RowBatch } from '../src/protocol/batch.js';
import { PublisherDefaults, ROW_BATCH_FORMAT_VERSION } from '../src/protocol/constants.js';
import { affinityOf, keyOf, schemaFingerprint, type ColumnInfo } from '../src/protocol/schema.js';
import { encodeValue } from '../src/protocol/values.js';
import { createScratchDatabase, realPostgresReachable } from '../test/support/postgres.js';
import { progress, type BenchReport } from './report.js';

const ROWS = 100_000;
const BATCH_ROWS = PublisherDefaults.maxBatchRows;
const ROUNDS = 2;

const COLUMNS: ColumnInfo[] = (
  [
    ['id', 'INTEGER', 1],
    ['device_name', 'TEXT', 0],
    ['reading', 'REAL', 0],
    ['counter', 'INTEGER', 0],
    ['note', 'TEXT', 0],
  ] as const
).map(([name, declared, pk]) => ({ name, declared_type: declared, affinity: affinityOf(declared), pk, notnull: pk > 0, has_default: false }));

/** The same journal for both lineages: inserts, then every tenth row updated. */
function batches(): RowBatch[] {
  const epoch = uuidv7();
  const hash = schemaFingerprint(COLUMNS);
  const out: RowBatch[] = [];
  let seq = 0;
  const rows = [];
  for (let i = 0; i < ROWS; i++) {
    const id = i < ROWS * 0.9 ? i + 1 : (i % (ROWS * 0.9)) * 9 + 1;
    seq++;
    rows.push({ seq, op: i < ROWS * 0.9 ? 'insert' : 'update', pk: [encodeValue(BigInt(id))], row: [BigInt(id), `sensor-${id % 97}`, i * 0.25 + 0.1, BigInt(i), i % 5 === 0 ? null : `note ${i}`].map(encodeValue) });
  }
  for (let start = 0; start < rows.length; start += BATCH_ROWS) {
    const slice = rows.slice(start, start + BATCH_ROWS);
    out.push(
      parseRowBatch({
        format_version: ROW_BATCH_FORMAT_VERSION,
        batch_id: uuidv7(),
        journal_epoch: epoch,
        source_table: 'bench_readings',
        key: keyOf(COLUMNS),
        schema: { hash, columns: COLUMNS },
        first_seq: slice[0]!.seq,
        last_seq: slice.at(-1)!.seq,
        rows: slice,
      }),
    );
  }
  return out;
}

async function device(store: Store, name: string): Promise<DeviceIdentity> {
  const created = await createDevice(store, { name });
  return authenticateDevice(store, created.token);
}

async function send(store: Store, identity: DeviceIdentity, list: readonly RowBatch[], policy: GovernancePolicy): Promise<string> {
  let lineageId = '';
  for (const batch of list) lineageId = (await ingestRowBatch(store, identity, batch, 0, { policy })).lineage_id;
  return lineageId;
}

async function seconds(fn: () => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function openBenchStore(): Promise<{ store: Store; kind: string; close: () => Promise<void> }> {
  if (await realPostgresReachable()) {
    const scratch = await createScratchDatabase();
    const store = await openStore({ databaseUrl: scratch.url });
    return { store, kind: 'PostgreSQL (127.0.0.1)', close: async () => { await store.close(); await scratch.drop(); } };
  }
  const store = await openStore();
  return { store, kind: 'PGlite (in memory)', close: () => store.close() };
}

/**
 * Replay rate of 100k staged rows into a mirror, as a ratio to the live
 * materialization rate of the same rows: the same journal goes once through ingest
 * on an active lineage (timed), and once into staging under review, approved, and
 * replayed by the replay code the worker runs (timed).
 */
export async function benchReplay(report: BenchReport): Promise<void> {
  const { store, kind, close } = await openBenchStore();
  try {
    const auto = governancePolicy('auto');
    const review = governancePolicy('review');
    let best = { live: 0, replay: 0, staging: 0, liveSeconds: 0, replaySeconds: 0 };
    // Best of two rounds, each on fresh lineages: the host may be busy with something else for a moment.
    for (let round = 1; round <= ROUNDS; round++) {
      progress(`replay: round ${round}/${ROUNDS}, ${ROWS.toLocaleString('en-US')} rows in batches of ${BATCH_ROWS} (${kind}): live materialization`);
      const live = batches();
      const staged = batches();
      const liveDevice = await device(store, `bench-live-${round}`);
      const liveSeconds = await seconds(() => send(store, liveDevice, live, auto));

      progress(`replay: round ${round}/${ROUNDS}: staging under review, approving, draining`);
      const stagedDevice = await device(store, `bench-staged-${round}`);
      let lineageId = '';
      const stageSeconds = await seconds(async () => {
        lineageId = await send(store, stagedDevice, staged, review);
      });
      const open = await openReviewOf(store, lineageId);
      if (!open) throw new Error('bench: no review was opened');
      const claimed = await store.transaction((tx) => claimReview(tx, open.id, 'bench'));
      await store.transaction((tx) => approveReview(tx, open.id, { action_version: claimed.action_version, columns: mirrorUnlessIgnored(COLUMNS, new Set()) }, 'bench'));
      let replayed = 0;
      const replaySeconds = await seconds(async () => {
        const result = await replayLineage(store, lineageId, { policy: review });
        if (result.state !== 'done') throw new Error(`bench: replay ended ${result.state}`);
        replayed = result.replayed;
      });
      if (replayed !== ROWS) throw new Error(`bench: replayed ${replayed} rows, not ${ROWS}`);
      if (ROWS / liveSeconds > best.live) best = { ...best, live: ROWS / liveSeconds, liveSeconds };
      if (replayed / replaySeconds > best.replay) best = { ...best, replay: replayed / replaySeconds, replaySeconds };
      best.staging = Math.max(best.staging, ROWS / stageSeconds);
    }
    report.add({
      name: 'replay rate / live materialization rate',
      value: best.replay / best.live,
      unit: 'x',
      baseline: 'live materialization of the same 100k rows (ingestRowBatch on an active lineage), best of two rounds each',
      details: {
        store: kind,
        rows: ROWS,
        batch_rows: BATCH_ROWS,
        live_rows_per_s: Math.round(best.live),
        replay_rows_per_s: Math.round(best.replay),
        staging_rows_per_s: Math.round(best.staging),
        live_s: best.liveSeconds,
        replay_s: best.replaySeconds,
      },
    });
  } finally {
    await close();
  }
}
