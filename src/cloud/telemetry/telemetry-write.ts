import type { TelemetryRow } from '../../protocol/telemetry-batch.js';
import { copyText } from '../store/copy-text.js';
import type { Queryable } from '../store/store.js';
import type { TelemetryMapping } from './telemetry-mappings.js';
import { dayOf } from './telemetry-partitions.js';
import { microsToIso, storedValue, timeMicros } from './telemetry-values.js';

/** A batch's values as column arrays, one entry per (row, point) with a value; NULLs make no entry. */
export interface PreparedValues {
  seqs: number[];
  points: number[];
  micros: bigint[];
  nums: (string | null)[];
  texts: (string | null)[];
  bools: (boolean | null)[];
  /** The days (partitions) the values fall in. */
  days: Set<number>;
}

/**
 * Turns rows into the store's columns outside any transaction: times are parsed
 * (a bad one refuses the batch, naming the row) and partitions can be created
 * before ingest locks anything. Rows without a time column get `receivedMicros`.
 */
export function prepareValues(mapping: TelemetryMapping, rows: readonly TelemetryRow[], receivedMicros: bigint): PreparedValues {
  const out: PreparedValues = { seqs: [], points: [], micros: [], nums: [], texts: [], bools: [], days: new Set() };
  const index = new Map(mapping.columns.map((c, i) => [c.name, i]));
  const timeAt = mapping.time_column === null ? -1 : index.get(mapping.time_column)!;
  const bindings = (mapping.points ?? []).map((p) => ({ at: index.get(p.column)!, id: p.point_id, kind: p.kind }));
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    const micros = timeAt < 0 ? receivedMicros : timeMicros(row.row[timeAt] ?? null, mapping.time_unit, `rows.${r}.row.${timeAt}`);
    let any = false;
    for (const b of bindings) {
      const v = storedValue(row.row[b.at] ?? null, b.kind);
      if (!v) continue;
      any = true;
      out.seqs.push(row.seq);
      out.points.push(b.id);
      out.micros.push(micros);
      out.nums.push(v.num);
      out.texts.push(v.text);
      out.bools.push(v.bool);
    }
    if (any) out.days.add(dayOf(micros));
  }
  return out;
}

/** The values of rows after `afterSeq` (the ones the lineage does not hold yet). */
export function valuesAfter(values: PreparedValues, afterSeq: number): PreparedValues {
  if (values.seqs.length === 0 || values.seqs[0]! > afterSeq) return values;
  const keep = values.seqs.map((s, i) => (s > afterSeq ? i : -1)).filter((i) => i >= 0);
  const pick = <T>(a: T[]) => keep.map((i) => a[i]!);
  return { seqs: pick(values.seqs), points: pick(values.points), micros: pick(values.micros), nums: pick(values.nums), texts: pick(values.texts), bools: pick(values.bools), days: values.days };
}

/** The columns of telemetry_values a batch's values are copied into. */
const VALUE_COLUMNS = 'telemetry_values (device_id, point_id, ts, v_num, v_text, v_bool)';

/** One device's values, as a group writes them together with other batches'. */
export interface DeviceValues {
  deviceId: string;
  values: PreparedValues;
}

/**
 * Writes values with one COPY straight into the partitioned store (values are
 * only ever appended, and the ledger keeps a batch from being written twice, so
 * there is nothing to reconcile in SQL), and moves each point's latest value
 * forward with one upsert; two statements whatever the row count, for one batch
 * or all the batches of a group (several devices). COPY beats an INSERT fed by
 * unnest arrays here (README, "Bulk writes"): no parameter arrays to build, send
 * and parse, and the text of each value reaches its column's input function
 * unchanged, so numeric digits stay exact.
 */
export async function writeValues(tx: Queryable, parts: readonly DeviceValues[]): Promise<number> {
  let n = 0;
  for (const p of parts) n += p.values.seqs.length;
  if (n === 0) return 0;
  const devices = new Array<string>(n);
  const points = new Array<string>(n);
  const ts = new Array<string>(n);
  const nums = new Array<string | null>(n);
  const texts = new Array<string | null>(n);
  const bools = new Array<string | null>(n);
  // The newest value per (device, point): one row each, as an upsert may not touch a row twice.
  const newest = new Map<string, { device: string; point: number; micros: bigint; at: number }>();
  let at = 0;
  // A row's values share its time: its text is made once per row, not once per value.
  let lastMicros: bigint | undefined;
  let lastIso = '';
  for (const { deviceId, values: v } of parts) {
    for (let i = 0; i < v.seqs.length; i++, at++) {
      devices[at] = deviceId;
      points[at] = String(v.points[i]!);
      if (v.micros[i] !== lastMicros) {
        lastMicros = v.micros[i]!;
        lastIso = microsToIso(lastMicros);
      }
      ts[at] = lastIso;
      nums[at] = v.nums[i]!;
      texts[at] = v.texts[i]!;
      const b = v.bools[i]!;
      bools[at] = b === null ? null : b ? 't' : 'f';
      const key = `${deviceId}\u0000${v.points[i]!}`;
      const seen = newest.get(key);
      if (seen === undefined || v.micros[i]! >= seen.micros) newest.set(key, { device: deviceId, point: v.points[i]!, micros: v.micros[i]!, at });
    }
  }
  await tx.copyIn(VALUE_COLUMNS, copyText([devices, points, ts, nums, texts, bools], n));
  const latest = [...newest.values()];
  await tx.query(
    `INSERT INTO telemetry_latest (device_id, point_id, ts, v_num, v_text, v_bool)
     SELECT u.d, u.p, u.t::timestamptz, u.n::numeric, u.x, u.b FROM unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::boolean[]) AS u(d, p, t, n, x, b)
     ON CONFLICT (device_id, point_id) DO UPDATE SET ts = excluded.ts, v_num = excluded.v_num, v_text = excluded.v_text, v_bool = excluded.v_bool
     WHERE telemetry_latest.ts <= excluded.ts`,
    [latest.map((l) => l.device), latest.map((l) => l.point), latest.map((l) => ts[l.at]!), latest.map((l) => nums[l.at]!), latest.map((l) => texts[l.at]!), latest.map((l) => bools[l.at] === null ? null : bools[l.at] === 't')],
  );
  return n;
}
