import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import type { Queryable } from '../store/store.js';
import type { PointKind } from './telemetry-values.js';

export const AGGREGATES = ['avg', 'min', 'max', 'sum', 'count', 'last'] as const;
export type Aggregate = (typeof AGGREGATES)[number];

/** More buckets than this in one answer is refused: ask for a wider bucket or a shorter range. */
export const MAX_BUCKETS = 10_000;

export interface TelemetryQuery {
  device: string;
  point: string;
  from: Date;
  to: Date;
  bucketSeconds: number;
  agg: Aggregate;
}

/** A value as JSON keeps it exactly: a number when the number is exact, else its text. */
export type QueryValue = number | string | boolean | null;

export interface TelemetrySeries {
  device: string;
  point: string;
  kind: PointKind;
  agg: Aggregate;
  bucket_seconds: number;
  from: string;
  to: string;
  /** One entry per bucket in [from, to), empty ones included (count 0, value null): gaps are explicit. */
  buckets: { start: string; count: number; value: QueryValue }[];
}

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };
const invalid = (message: string, field: string) => new SynclineError('invalid_request', message, { field });

function required(q: Record<string, unknown>, field: string): string {
  const v = q[field];
  if (typeof v !== 'string' || v === '') throw invalid(`${field} is required (once)`, field);
  return v;
}

function time(text: string, field: string): Date {
  const d = new Date(/^\d+$/.test(text) ? Number(text) : text);
  if (Number.isNaN(d.getTime())) throw invalid(`${field} is an ISO 8601 time or milliseconds since 1970`, field);
  return d;
}

/** Reads `?device=&point=&from=&to=&bucket=1m&agg=avg`; every bad parameter is named. */
export function parseTelemetryQuery(query: unknown): TelemetryQuery {
  const q = (query ?? {}) as Record<string, unknown>;
  const device = required(q, 'device');
  if (!isUuid(device)) throw invalid('device is a device id', 'device');
  const point = required(q, 'point');
  const from = time(required(q, 'from'), 'from');
  const to = time(required(q, 'to'), 'to');
  if (to <= from) throw invalid('to must be after from', 'to');
  const bucketText = typeof q.bucket === 'string' ? q.bucket : '1m';
  const m = /^([1-9][0-9]{0,6})(s|m|h|d)$/.exec(bucketText);
  if (!m) throw invalid('bucket is a whole number with s, m, h or d, e.g. 1m', 'bucket');
  const bucketSeconds = Number(m[1]) * UNIT_SECONDS[m[2]!]!;
  const agg = (typeof q.agg === 'string' ? q.agg : 'avg') as Aggregate;
  if (!AGGREGATES.includes(agg)) throw invalid(`agg is one of ${AGGREGATES.join(', ')}`, 'agg');
  const buckets = Math.ceil((to.getTime() - from.getTime()) / 1000 / bucketSeconds);
  if (buckets > MAX_BUCKETS) throw invalid(`the range holds ${buckets} buckets, more than ${MAX_BUCKETS}; use a wider bucket`, 'bucket');
  return { device, point, from, to, bucketSeconds, agg };
}

function aggregateSql(agg: Aggregate, kind: PointKind): string {
  const column = kind === 'numeric' ? 'v_num' : kind === 'boolean' ? 'v_bool' : 'v_text';
  if (agg === 'count') return 'NULL::text';
  if (agg === 'last') return `(array_agg(coalesce(v_num::text, v_text, v_bool::text) ORDER BY ts DESC))[1]`;
  if (kind !== 'numeric' && (agg === 'avg' || agg === 'sum')) throw invalid(`${agg} needs a numeric point; this one is ${kind}`, 'agg');
  if (kind === 'boolean') return `${agg === 'min' ? 'bool_and' : 'bool_or'}(v_bool)::text`;
  return `${agg}(${column})::text`;
}

/**
 * A stored value as JSON, exactly: whole numbers beyond 2^53 stay decimal text
 * (an int64 is never rounded through a double); other numbers were doubles,
 * stored as their shortest round-trip text, and parse back to the same double.
 */
export function jsonValue(text: string | null, kind: PointKind, agg: Aggregate): QueryValue {
  if (text === null) return null;
  if (kind === 'boolean' && (text === 'true' || text === 'false')) return text === 'true';
  if (kind !== 'numeric') return text;
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  if (agg !== 'avg' && /^-?[0-9]+$/.test(text) && !Number.isSafeInteger(n)) return text;
  return n;
}

export async function queryTelemetry(db: Queryable, projectId: string | undefined, q: TelemetryQuery): Promise<TelemetrySeries> {
  const { rows: points } = await db.query<{ id: number; kind: PointKind }>(
    `SELECT p.id, p.kind FROM telemetry_points p JOIN devices d ON d.project_id = p.project_id WHERE d.id = $1 AND p.name = $2${projectId ? ' AND p.project_id = $3' : ''}`,
    projectId ? [q.device, q.point, projectId] : [q.device, q.point],
  );
  const point = points[0];
  if (!point) throw new SynclineError('not_found', 'no such point in the device\'s project', { field: 'point' });
  const { rows } = await db.query<{ start: Date; count: string; value: string | null }>(
    `SELECT s.start, coalesce(a.count, 0) AS count, a.value
     FROM generate_series($3::timestamptz, $4::timestamptz - interval '1 microsecond', make_interval(secs => $5)) AS s(start)
     LEFT JOIN (
       SELECT date_bin(make_interval(secs => $5), ts, $3::timestamptz) AS start, count(*) AS count, ${aggregateSql(q.agg, point.kind)} AS value
       FROM telemetry_values WHERE device_id = $1 AND point_id = $2 AND ts >= $3 AND ts < $4 GROUP BY 1
     ) a ON a.start = s.start
     ORDER BY s.start`,
    [q.device, point.id, q.from.toISOString(), q.to.toISOString(), q.bucketSeconds],
  );
  return {
    device: q.device,
    point: q.point,
    kind: point.kind,
    agg: q.agg,
    bucket_seconds: q.bucketSeconds,
    from: q.from.toISOString(),
    to: q.to.toISOString(),
    buckets: rows.map((r) => {
      const count = Number(r.count);
      return { start: r.start.toISOString(), count, value: q.agg === 'count' ? count : jsonValue(r.value, point.kind, q.agg) };
    }),
  };
}

export interface LatestValue {
  point: string;
  kind: PointKind;
  ts: string;
  value: QueryValue;
}

/** The newest value of every point of a device. */
export async function latestTelemetry(db: Queryable, device: string): Promise<{ device: string; points: LatestValue[] }> {
  if (!isUuid(device)) throw invalid('device is a device id', 'device');
  const { rows } = await db.query<{ point: string; kind: PointKind; ts: Date; value: string | null }>(
    `SELECT p.name AS point, p.kind, l.ts, coalesce(l.v_num::text, l.v_text, l.v_bool::text) AS value
     FROM telemetry_latest l JOIN telemetry_points p ON p.id = l.point_id WHERE l.device_id = $1 ORDER BY p.name`,
    [device],
  );
  return { device, points: rows.map((r) => ({ point: r.point, kind: r.kind, ts: r.ts.toISOString(), value: jsonValue(r.value, r.kind, 'last') })) };
}
