import type { Logger } from 'pino';
import type { BatchAck } from '../../protocol/batch.js';
import type { TelemetryBatch, TelemetryRow } from '../../protocol/telemetry-batch.js';
import type { DeviceIdentity } from '../auth/devices.js';
import type { GovernancePolicy } from '../governance/policy.js';
import { validateSourceName } from '../identifiers.js';
import type { GroupCommitter, GroupJob } from '../ingest/group-commit.js';
import { recordSegment, storedAck } from '../ingest/segment-ledger.js';
import { transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { toStoredJson } from '../type-mapping.js';
import { LineageGate, telemetryRunner, type TelemetryJob } from './telemetry-group.js';
import { advanceTelemetryLineage, checkFollows, lockTelemetryLineage, storedTelemetrySeq } from './telemetry-lineage.js';
import { approveMapping, autoDecision, mappingFor, type TelemetryMapping } from './telemetry-mappings.js';
import type { TelemetryPartitions } from './telemetry-partitions.js';
import { prepareValues, valuesAfter, writeValues, type PreparedValues } from './telemetry-write.js';

/** Thrown inside a transaction whose values need partitions that do not exist yet; they are created outside it and the batch runs again. */
export class NeedPartitions extends Error {
  constructor(readonly days: Set<number>) {
    super('telemetry partitions missing');
  }
}

const MAX_PARTITION_ROUNDS = 3;

/** Runs `fn` in a transaction, creating the partitions it asks for in between attempts. */
export async function withPartitions<T>(store: Store, partitions: TelemetryPartitions, fn: (tx: Queryable) => Promise<T>): Promise<T> {
  for (let round = 1; ; round++) {
    try {
      return await transactionWithRetry(store, fn);
    } catch (error) {
      if (!(error instanceof NeedPartitions) || round >= MAX_PARTITION_ROUNDS) throw error;
      await partitions.ensure(error.days);
    }
  }
}

export interface TelemetryIngestOptions {
  policy: GovernancePolicy;
  partitions: TelemetryPartitions;
  logger?: Logger;
  /** Commits batches together with other devices' batches (group-commit.ts); each alone when absent. */
  group?: GroupCommitter;
}

/**
 * Takes one telemetry batch in one transaction, like a row batch: dedupe by
 * (device, batch_id), lock the lineage, follow or refuse its epoch, skip rows
 * already held, write the ledger row, then store the values (approved mapping)
 * or stage the rows (mapping waiting for review). Approved mappings never
 * change, so they are cached and their values prepared before the transaction.
 */
export class TelemetryIngest {
  readonly #store: Store;
  readonly #o: TelemetryIngestOptions;
  readonly #approved = new Map<string, TelemetryMapping>();
  readonly #gate = new LineageGate();

  constructor(store: Store, options: TelemetryIngestOptions) {
    this.#store = store;
    this.#o = options;
  }

  async ingest(device: DeviceIdentity, batch: TelemetryBatch, byteCount: number): Promise<BatchAck> {
    const context = { device_id: device.device_id, batch_id: batch.batch_id };
    validateSourceName(batch.source_table, 'table', context);
    for (const c of batch.schema.columns) validateSourceName(c.name, 'column', { ...context, table: batch.source_table });
    const key = `${device.project_id}\u0000${batch.source_table}\u0000${batch.schema.hash}`;
    const receivedMicros = BigInt(Date.now()) * 1000n;
    let prepared: PreparedValues | undefined;
    const cached = this.#approved.get(key);
    if (cached) {
      prepared = prepareValues(cached, batch.rows, receivedMicros);
      await this.#o.partitions.ensure(prepared.days);
    }
    const inTransaction = async (tx: Queryable): Promise<BatchAck> => {
      const previous = await storedAck(tx, 'telemetry_segments', device.device_id, batch.batch_id);
      if (previous) return { ...previous, status: 'duplicate' as const };
      const lineage = await lockTelemetryLineage(tx, device, batch.source_table);
      const segmentContext = { ...context, lineage_id: lineage.id, table: batch.source_table };
      checkFollows(batch, lineage, segmentContext);
      const { ack: result, fresh, lastSeq } = await recordSegment(tx, 'telemetry_segments', device.device_id, batch, lineage, byteCount, segmentContext);
      let stored = 0;
      if (fresh.length > 0) {
        const mapping = cached ?? (await this.#mapping(tx, device.project_id, batch));
        if (mapping.status === 'approved') {
          const values = prepared ?? prepareValues(mapping, batch.rows, receivedMicros);
          if (!prepared && !this.#o.partitions.knows(values.days)) throw new NeedPartitions(values.days);
          await writeValues(tx, [{ deviceId: device.device_id, values: valuesAfter(values, lastSeq) }]);
          stored = fresh.length;
          this.#approved.set(key, mapping);
        } else await stageRows(tx, mapping, lineage.id, fresh, receivedMicros);
      }
      await advanceTelemetryLineage(tx, lineage.id, { epoch: batch.journal_epoch, lastSeq: result.last_seq, received: fresh.length, stored, schemaHash: batch.schema.hash });
      return result;
    };
    const alone = () => withPartitions(this.#store, this.#o.partitions, inTransaction);
    // In a group, a batch that needs new partitions fails there (NeedPartitions) and runs alone, which creates them.
    // One whose mapping is approved already runs set-based with the group's other such batches.
    const job: GroupJob<BatchAck> = { lockKey: `telemetry\u0000${device.device_id}\u0000${batch.source_table}`, rows: batch.rows.length, inGroup: inTransaction, alone };
    const group = this.#o.group;
    const order = { epoch: batch.journal_epoch, after: batch.after_seq, last: batch.last_seq, stored: () => storedTelemetrySeq(this.#store, device.device_id, batch.source_table, batch.journal_epoch) };
    const ack = await this.#gate.run(job.lockKey, order, () => {
      if (!group) return alone();
      if (!prepared) return group.submit(job);
      const setJob: TelemetryJob = { ...job, together: telemetryRunner, device, batch, byteCount, values: prepared };
      return group.submit(setJob);
    });
    this.#o.logger?.debug({ ...context, table: batch.source_table, ...ack }, 'telemetry batch ingested');
    return { ...ack, in_order: true };
  }

  /** The mapping, approved at once under `auto`; a pending one is held (FOR SHARE) so an approval waits for this batch's staged rows. */
  async #mapping(tx: Queryable, projectId: string, batch: TelemetryBatch): Promise<TelemetryMapping> {
    const mapping = await mappingFor(tx, projectId, batch, false);
    if (mapping.status === 'approved') return mapping;
    const auto = this.#o.policy.schema === 'auto';
    const held = await mappingFor(tx, projectId, batch, auto ? 'update' : 'share');
    if (held.status === 'approved' || !auto) return held;
    return approveMapping(tx, held, autoDecision(held), 'schema-policy auto', true);
  }
}

/** Rows of a mapping under review, kept exactly (stored-JSON values) for the replay its approval runs. Times are checked now, so a batch with a bad one is refused at once. */
async function stageRows(tx: Queryable, mapping: TelemetryMapping, lineageId: string, rows: readonly TelemetryRow[], receivedMicros: bigint): Promise<void> {
  prepareValues(mapping, rows, receivedMicros);
  await tx.query(
    `INSERT INTO telemetry_staged (mapping_id, lineage_id, seq, row) SELECT $1::uuid, $2::uuid, u.s::bigint, u.r::jsonb FROM unnest($3::text[], $4::text[]) AS u(s, r)`,
    [mapping.id, lineageId, rows.map((r) => String(r.seq)), rows.map((r) => JSON.stringify(r.row.map(toStoredJson)))],
  );
}
