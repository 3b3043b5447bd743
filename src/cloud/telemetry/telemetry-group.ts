import type { BatchAck } from '../../protocol/batch.js';
import type { TelemetryBatch } from '../../protocol/telemetry-batch.js';
import type { DeviceIdentity } from '../auth/devices.js';
import type { GroupJob, Outcome, SetRunner } from '../ingest/group-commit.js';
import { lineageKey } from '../ingest/lineage.js';
import { insertSegments, ledgerKey, segmentAck, storedAcks, type SegmentEntry } from '../ingest/segment-ledger.js';
import type { Queryable } from '../store/store.js';
import { advanceTelemetryLineages, checkFollows, lockTelemetryLineages, type TelemetryLineage } from './telemetry-lineage.js';
import { valuesAfter, writeValues, type DeviceValues, type PreparedValues } from './telemetry-write.js';

/** A telemetry batch of an approved mapping as a group job: its values were prepared (and their partitions made) before it was submitted. */
export interface TelemetryJob extends GroupJob<BatchAck> {
  device: DeviceIdentity;
  batch: TelemetryBatch;
  byteCount: number;
  values: PreparedValues;
}

/** A lineage as the group's batches move it, written back once at the end. */
interface Moving extends TelemetryLineage {
  received: number;
  stored: number;
  schemaHash: string | undefined;
}

/**
 * Ingests the telemetry batches of a group set-based: one dedupe lookup, one
 * statement locking every lineage (missing ones created in one more), one ledger
 * insert, one COPY of every batch's values, one latest-value upsert and one
 * lineage update, where each batch alone costs six statements. A device with
 * several batches in flight sends them into one group, so they are taken in seq
 * order whatever order they arrived in; the answers are those each batch would
 * get alone in that order (ingest-telemetry-batch.ts). A batch refused before any
 * write (stale epoch, too early) is answered ok: false and runs alone after the
 * commit; a second copy of a batch runs by its `inGroup` after the rest and finds
 * the first copy's ledger row.
 */
export const telemetryRunner: SetRunner = {
  async run(tx: Queryable, jobs: readonly GroupJob<unknown>[]): Promise<Outcome<unknown>[]> {
    const all = jobs as readonly TelemetryJob[];
    const outcomes: Outcome<unknown>[] = new Array(all.length);
    const stored = await storedAcks(tx, 'telemetry_segments', all.map((j) => ({ deviceId: j.device.device_id, batchId: j.batch.batch_id })));
    const taken: number[] = [];
    const later: number[] = [];
    const seen = new Set<string>();
    all.forEach((job, index) => {
      const key = ledgerKey(job.device.device_id, job.batch.batch_id);
      if (seen.has(key)) return void later.push(index);
      seen.add(key);
      const previous = stored.get(key);
      if (previous) outcomes[index] = { ok: true, value: { ...previous, status: 'duplicate' } };
      else taken.push(index);
    });
    const locked = await lockTelemetryLineages(tx, taken.map((i) => ({ device: all[i]!.device, table: all[i]!.batch.source_table })));
    const moving = new Map<string, Moving>();
    const keyOf = (i: number) => lineageKey(all[i]!.device.device_id, all[i]!.batch.source_table);
    // Per lineage in (epoch, seq) order: batches sent together may arrive in any order.
    const order = taken.map((i) => ({ i, key: keyOf(i), epoch: all[i]!.batch.journal_epoch, seq: all[i]!.batch.first_seq }));
    order.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.epoch < b.epoch ? -1 : a.epoch > b.epoch ? 1 : a.seq - b.seq));
    const entries: SegmentEntry[] = [];
    const writes: DeviceValues[] = [];
    for (const { i, key } of order) {
      const { device, batch, byteCount, values } = all[i]!;
      let lineage = moving.get(key);
      if (!lineage) moving.set(key, (lineage = { ...locked.get(key)!, received: 0, stored: 0, schemaHash: undefined }));
      const context = { device_id: device.device_id, batch_id: batch.batch_id, lineage_id: lineage.id, table: batch.source_table };
      let segment: ReturnType<typeof segmentAck<TelemetryBatch['rows'][number]>>;
      try {
        checkFollows(batch, lineage, context);
        segment = segmentAck(batch, lineage, context);
      } catch (error) {
        outcomes[i] = { ok: false, error };
        continue;
      }
      entries.push({ deviceId: device.device_id, batch, lineageId: lineage.id, byteCount, ack: segment.ack });
      if (segment.fresh.length > 0) writes.push({ deviceId: device.device_id, values: valuesAfter(values, segment.lastSeq) });
      lineage.journal_epoch = batch.journal_epoch;
      lineage.last_seq = segment.ack.last_seq;
      lineage.received += segment.fresh.length;
      lineage.stored += segment.fresh.length;
      lineage.schemaHash = batch.schema.hash;
      outcomes[i] = { ok: true, value: segment.ack };
    }
    await insertSegments(tx, 'telemetry_segments', entries);
    await writeValues(tx, writes);
    const moved = [...moving.values()].filter((l) => l.schemaHash !== undefined);
    await advanceTelemetryLineages(
      tx,
      moved.map((l) => ({ id: l.id, epoch: l.journal_epoch!, lastSeq: l.last_seq, received: l.received, stored: l.stored, schemaHash: l.schemaHash! })),
    );
    for (const index of later) outcomes[index] = { ok: true, value: await all[index]!.inGroup(tx) };
    return outcomes;
  },
};

/** How long a batch with after_seq waits for its predecessor to reach this process before it goes on (and is answered telemetry_too_early if that is still missing). */
const HOLD_MS = 1000;

/**
 * Lineages whose last seq the gate remembers after their gates are gone. Only
 * lineages pipelining now need it (a batch without after_seq never asks); a
 * forgotten one costs its next pipelined batch one read of the store's cursor.
 */
export const REMEMBERED_LINEAGES = 20_000;

interface Gate {
  /** The lineage's batches handed to the group committer and not settled yet. */
  busy: number;
  /** Batches can still join the batches being handed over (until the turn ends, before the committer takes its group). */
  open: boolean;
  /** Batches waiting for the busy ones to settle. */
  waiting: (() => void)[];
  /** Batches waiting for their predecessor (after_seq) to reach the gate. */
  held: { after: number; go: () => void }[];
  users: number;
}

/** Where a batch sits in its lineage, and how to learn what the store holds when the gate does not remember. */
export interface GateOrder {
  epoch: string;
  after: number | undefined;
  last: number;
  /** The lineage's last stored seq in `epoch` (0 in another epoch). */
  stored: () => Promise<number>;
}

/**
 * Orders one lineage's batches in this process. A device's pipelined batches can
 * reach ingest out of order (their bodies are decompressed and parsed side by
 * side), so a batch whose predecessor has not come yet waits for it (at most
 * HOLD_MS). Batches that come while some of the lineage's are being stored wait
 * for those to settle and go on together, so they share the next group: without
 * that they land in groups running side by side, and whichever locks the lineage
 * first may hold a batch whose predecessor the other has not stored yet
 * (telemetry_too_early, a round trip lost). It costs no parallelism: the
 * lineage's row lock serializes those transactions in PostgreSQL anyway.
 */
export class LineageGate {
  readonly #gates = new Map<string, Gate>();
  /**
   * Per lineage, the epoch and highest last seq of a batch that reached the gate,
   * kept after its gate is gone (the next batch follows it), most recently
   * reached last. At most `#capacity`: the longest unused go first. A batch
   * whose lineage is forgotten (or in another epoch) asks the store instead,
   * which holds every predecessor that settled; one still on its way is waited
   * for as before.
   */
  readonly #reached = new Map<string, { epoch: string; seq: number }>();
  readonly #capacity: number;

  constructor(capacity = REMEMBERED_LINEAGES) {
    this.#capacity = capacity;
  }

  /** Lineages remembered now. */
  get remembered(): number {
    return this.#reached.size;
  }

  async run<T>(key: string, order: GateOrder, fn: () => Promise<T>): Promise<T> {
    let gate = this.#gates.get(key);
    if (!gate) this.#gates.set(key, (gate = { busy: 0, open: false, waiting: [], held: [], users: 0 }));
    gate.users += 1;
    try {
      if (order.after !== undefined) {
        let known = this.#seqIn(key, order.epoch);
        if (known === undefined) {
          const stored = await order.stored();
          // A batch may have reached the gate while the store answered.
          known = Math.max(stored, this.#seqIn(key, order.epoch) ?? 0);
          this.#reach(key, order.epoch, known);
        }
        if (known < order.after) await hold(gate, order.after);
      }
      const reached = this.#reach(key, order.epoch, order.last);
      for (const h of gate.held.filter((h) => h.after <= reached)) h.go();
      while (gate.busy > 0 && !gate.open) await new Promise<void>((resolve) => gate.waiting.push(resolve));
      if (gate.busy === 0) {
        gate.open = true;
        const closing = gate;
        setImmediate(() => (closing.open = false));
      }
      gate.busy += 1;
      try {
        return await fn();
      } finally {
        gate.busy -= 1;
        if (gate.busy === 0) for (const go of gate.waiting.splice(0)) go();
      }
    } finally {
      gate.users -= 1;
      if (gate.users === 0) this.#gates.delete(key);
    }
  }

  #seqIn(key: string, epoch: string): number | undefined {
    const entry = this.#reached.get(key);
    return entry?.epoch === epoch ? entry.seq : undefined;
  }

  /** Records that `seq` of `epoch` reached the gate (a new epoch starts over) and returns the lineage's highest. */
  #reach(key: string, epoch: string, seq: number): number {
    const highest = Math.max(this.#seqIn(key, epoch) ?? 0, seq);
    // Deleted first so the key moves to the end: Map order is insertion order.
    this.#reached.delete(key);
    this.#reached.set(key, { epoch, seq: highest });
    if (this.#reached.size > this.#capacity) this.#reached.delete(this.#reached.keys().next().value!);
    return highest;
  }
}

function hold(gate: Gate, after: number): Promise<void> {
  return new Promise((resolve) => {
    const entry = {
      after,
      go: () => {
        clearTimeout(timer);
        const at = gate.held.indexOf(entry);
        if (at >= 0) gate.held.splice(at, 1);
        resolve();
      },
    };
    const timer = setTimeout(entry.go, HOLD_MS);
    gate.held.push(entry);
  });
}
