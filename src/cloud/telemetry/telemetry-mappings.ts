import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo } from '../../protocol/schema.js';
import type { TelemetryBatch } from '../../protocol/telemetry-batch.js';
import type { Queryable } from '../store/store.js';
import { defaultKind, POINT_KINDS, TIME_UNITS, type PointKind, type TimeUnit } from './telemetry-values.js';

/** One column feeding one point. */
export interface PointBinding {
  column: string;
  point_id: number;
  point: string;
  kind: PointKind;
}

/** How one schema of one table of a project becomes points; approved mappings never change. */
export interface TelemetryMapping {
  id: string;
  project_id: string;
  source_table: string;
  schema_hash: string;
  columns: ColumnInfo[];
  time_column: string | null;
  status: 'pending' | 'approved';
  points: PointBinding[] | null;
  time_unit: TimeUnit;
}

const COLUMNS = 'id, project_id, source_table, schema_hash, columns, time_column, status, points, time_unit';

/** The mapping of the batch's schema, created (pending) on first sight; `lock` holds it against (or for) a concurrent approval. */
export async function mappingFor(tx: Queryable, projectId: string, batch: TelemetryBatch, lock: false | 'share' | 'update'): Promise<TelemetryMapping> {
  await tx.query(
    `INSERT INTO telemetry_mappings (id, project_id, source_table, schema_hash, columns, time_column) VALUES ($1, $2, $3, $4, $5::jsonb, $6)
     ON CONFLICT (project_id, source_table, schema_hash) DO NOTHING`,
    [uuidv7(), projectId, batch.source_table, batch.schema.hash, JSON.stringify(batch.schema.columns), batch.time_column],
  );
  const { rows } = await tx.query<TelemetryMapping>(
    `SELECT ${COLUMNS} FROM telemetry_mappings WHERE project_id = $1 AND source_table = $2 AND schema_hash = $3${lock === 'share' ? ' FOR SHARE' : lock === 'update' ? ' FOR UPDATE' : ''}`,
    [projectId, batch.source_table, batch.schema.hash],
  );
  return rows[0]!;
}

export async function lockMapping(tx: Queryable, id: string): Promise<TelemetryMapping> {
  const { rows } = /^[0-9a-f-]{36}$/.test(id) ? await tx.query<TelemetryMapping>(`SELECT ${COLUMNS} FROM telemetry_mappings WHERE id = $1 FOR UPDATE`, [id]) : { rows: [] };
  if (!rows[0]) throw new SynclineError('not_found', 'no such telemetry mapping', { mapping_id: id.slice(0, 64) });
  return rows[0];
}

/** What an operator decides for a column: a point (named, of a kind), or nothing. */
export interface ColumnDecision {
  name: string;
  action: 'point' | 'ignore';
  point?: string;
  kind?: PointKind;
}

export interface ApproveRequest {
  time_unit?: TimeUnit;
  columns: ColumnDecision[];
}

const bad = (message: string, field: string) => new SynclineError('telemetry_bad_mapping', message, { field });

/** Reads an approve body; every column but the time column needs exactly one decision. */
export function parseApproveRequest(body: unknown, mapping: TelemetryMapping): ApproveRequest {
  if (typeof body !== 'object' || body === null) throw new SynclineError('invalid_request', 'the body is a JSON object', { field: '(root)' });
  const b = body as { time_unit?: unknown; columns?: unknown };
  if (b.time_unit !== undefined && !TIME_UNITS.includes(b.time_unit as TimeUnit)) throw new SynclineError('invalid_request', `time_unit is one of ${TIME_UNITS.join(', ')}`, { field: 'time_unit' });
  if (!Array.isArray(b.columns)) throw new SynclineError('invalid_request', 'columns is an array of {name, action, point?, kind?}', { field: 'columns' });
  const names = new Set(mapping.columns.map((c) => c.name));
  const decided = new Map<string, ColumnDecision>();
  const points = new Map<string, string>();
  b.columns.forEach((raw: unknown, i) => {
    const c = raw as Partial<ColumnDecision>;
    const at = `columns.${i}`;
    if (typeof c?.name !== 'string' || !names.has(c.name)) throw bad(`${at}.name is not a column of the table`, `${at}.name`);
    if (c.name === mapping.time_column) throw bad(`${JSON.stringify(c.name)} is the time column; it is not a point`, `${at}.name`);
    if (decided.has(c.name)) throw bad(`column ${JSON.stringify(c.name)} is decided twice`, `${at}.name`);
    if (c.action !== 'point' && c.action !== 'ignore') throw bad(`${at}.action is point or ignore`, `${at}.action`);
    if (c.kind !== undefined && !POINT_KINDS.includes(c.kind)) throw bad(`${at}.kind is one of ${POINT_KINDS.join(', ')}`, `${at}.kind`);
    if (c.point !== undefined && (typeof c.point !== 'string' || c.point.length === 0 || c.point.length > 200 || c.point.includes('\u0000'))) throw bad(`${at}.point is a name of 1 to 200 characters`, `${at}.point`);
    const decision: ColumnDecision = { name: c.name, action: c.action, ...(c.point !== undefined ? { point: c.point } : {}), ...(c.kind !== undefined ? { kind: c.kind } : {}) };
    if (c.action === 'point') {
      const point = c.point ?? `${mapping.source_table}.${c.name}`;
      const other = points.get(point);
      if (other !== undefined) throw bad(`point ${JSON.stringify(point)} is mapped twice (columns ${JSON.stringify(other)} and ${JSON.stringify(c.name)})`, `${at}.point`);
      points.set(point, c.name);
    }
    decided.set(c.name, decision);
  });
  const missing = mapping.columns.filter((c) => c.name !== mapping.time_column && !decided.has(c.name)).map((c) => c.name);
  if (missing.length > 0) throw bad(`every column but the time column needs an action; missing: ${missing.slice(0, 10).join(', ')}`, 'columns');
  return { ...(b.time_unit !== undefined ? { time_unit: b.time_unit as TimeUnit } : {}), columns: [...decided.values()] };
}

/** Every non-time column as the point `{table}.{column}` of its default kind (`--schema-policy auto`). */
export function autoDecision(mapping: TelemetryMapping): ApproveRequest {
  return {
    columns: mapping.columns
      .filter((c) => c.name !== mapping.time_column)
      .map((c) => ({ name: c.name, action: 'point' as const, point: `${mapping.source_table}.${c.name}`, kind: defaultKind(c.declared_type, c.affinity) })),
  };
}

/**
 * Records the decision: creates the points it names (a point that exists must be
 * of the same kind, unless `adoptKinds`, which auto uses so it never fails), and
 * marks the mapping approved.
 */
export async function approveMapping(tx: Queryable, mapping: TelemetryMapping, request: ApproveRequest, actor: string, adoptKinds: boolean): Promise<TelemetryMapping> {
  const wanted = request.columns.filter((c) => c.action === 'point');
  const bindings: PointBinding[] = [];
  for (const c of wanted) {
    const column = mapping.columns.find((x) => x.name === c.name)!;
    const name = c.point ?? `${mapping.source_table}.${c.name}`;
    const kind = c.kind ?? defaultKind(column.declared_type, column.affinity);
    await tx.query('INSERT INTO telemetry_points (project_id, name, kind) VALUES ($1, $2, $3) ON CONFLICT (project_id, name) DO NOTHING', [mapping.project_id, name, kind]);
    const { rows } = await tx.query<{ id: number; kind: PointKind }>('SELECT id, kind FROM telemetry_points WHERE project_id = $1 AND name = $2', [mapping.project_id, name]);
    const point = rows[0]!;
    if (point.kind !== kind && !adoptKinds) throw bad(`point ${JSON.stringify(name)} exists with kind ${point.kind}, not ${kind}`, 'columns');
    bindings.push({ column: c.name, point_id: point.id, point: name, kind: point.kind });
  }
  const timeUnit = request.time_unit ?? mapping.time_unit;
  await tx.query(`UPDATE telemetry_mappings SET status = 'approved', points = $2::jsonb, time_unit = $3, decided_by = $4, decided_at = now() WHERE id = $1`, [
    mapping.id,
    JSON.stringify(bindings),
    timeUnit,
    actor,
  ]);
  return { ...mapping, status: 'approved', points: bindings, time_unit: timeUnit };
}

export interface MappingView extends TelemetryMapping {
  staged_rows: number;
}

export async function listMappings(db: Queryable, status?: 'pending' | 'approved'): Promise<MappingView[]> {
  const { rows } = await db.query<TelemetryMapping & { staged_rows: string }>(
    `SELECT ${COLUMNS.split(', ').map((c) => `m.${c}`).join(', ')}, (SELECT count(*) FROM telemetry_staged s WHERE s.mapping_id = m.id) AS staged_rows
     FROM telemetry_mappings m ${status ? 'WHERE m.status = $1' : ''} ORDER BY m.created_at, m.id`,
    status ? [status] : [],
  );
  return rows.map((r) => ({ ...r, staged_rows: Number(r.staged_rows) }));
}
