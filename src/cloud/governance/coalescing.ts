import { SynclineError } from '../../protocol/errors.js';
import type { TableKey } from '../../protocol/schema.js';
import type { Queryable } from '../store/store.js';
import { recordAudit } from './audit.js';
import type { ColumnAction } from './column-plan.js';
import type { ActorLabel } from './reviews.js';

/**
 * Where a project's mirrors go. `none`: one mirror per device and table
 * (`edge_mirror_{device8}_{table}`). `project`: the same table of every device in
 * one mirror (`edge_mirror_{table}`) keyed by device id plus the table's key, and a
 * schema approved into it is approved for every later device that shows it.
 *
 * The setting decides where a lineage's next new mirror goes; a lineage keeps the
 * mirror it has, so turning coalescing on or off never splits a table's rows.
 */
export type Coalescing = 'none' | 'project';
export const COALESCING_MODES: readonly Coalescing[] = ['none', 'project'];

export interface ProjectSettings {
  id: string;
  org_id: string;
  name: string;
  coalescing: Coalescing;
  created_at: string;
}

export async function listProjects(db: Queryable): Promise<ProjectSettings[]> {
  const { rows } = await db.query<Omit<ProjectSettings, 'created_at'> & { created_at: Date }>('SELECT id, org_id, name, coalescing, created_at FROM projects ORDER BY id');
  return rows.map((r) => ({ ...r, created_at: r.created_at.toISOString() }));
}

export async function projectCoalescing(db: Queryable, projectId: string): Promise<Coalescing> {
  const { rows } = await db.query<{ coalescing: Coalescing }>('SELECT coalescing FROM projects WHERE id = $1', [projectId]);
  return rows[0]?.coalescing ?? 'none';
}

/** Changes a project's coalescing, audited with the previous value. */
export async function setProjectCoalescing(tx: Queryable, projectId: string, coalescing: Coalescing, actor: ActorLabel): Promise<ProjectSettings> {
  const { rows } = await tx.query<{ previous: Coalescing }>('SELECT coalescing AS previous FROM projects WHERE id = $1 FOR UPDATE', [projectId.slice(0, 200)]);
  if (!rows[0]) throw new SynclineError('not_found', 'no such project', { project_id: projectId.slice(0, 64) });
  await tx.query('UPDATE projects SET coalescing = $2 WHERE id = $1', [projectId, coalescing]);
  await recordAudit(tx, { actor, action: 'project.settings', project_id: projectId, detail: { coalescing: { from: rows[0].previous, to: coalescing } } });
  return (await listProjects(tx)).find((p) => p.id === projectId)!;
}

/** A project's shared mirror for one table and key. */
export interface CoalescedMirror {
  table: string;
  /** Mirror columns holding the key (after the device id), in key order. */
  key_targets: string[];
}

export async function findCoalescedMirror(tx: Queryable, projectId: string, sourceTable: string, key: TableKey): Promise<CoalescedMirror | undefined> {
  const { rows } = await tx.query<{ table: string; key_targets: string[] }>(
    `SELECT mirror_table AS table, key_targets FROM edge_coalesced_mirrors
     WHERE project_id = $1 AND source_table = $2 AND key_kind = $3 AND key_columns = $4::jsonb`,
    [projectId, sourceTable, key.kind, JSON.stringify(key.columns)],
  );
  return rows[0];
}

export async function registerCoalescedMirror(tx: Queryable, projectId: string, sourceTable: string, key: TableKey, mirror: CoalescedMirror): Promise<void> {
  await tx.query(
    `INSERT INTO edge_coalesced_mirrors (project_id, source_table, key_kind, key_columns, key_targets, mirror_table) VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6)`,
    [projectId, sourceTable, key.kind, JSON.stringify(key.columns), JSON.stringify(mirror.key_targets), mirror.table],
  );
}

/** A schema approved into a coalesced mirror, with the column actions later devices get. */
export interface CoalescedSchema {
  review_id: string;
  approved_by: ActorLabel;
  columns: ColumnAction[];
}

export async function findCoalescedSchema(tx: Queryable, projectId: string, sourceTable: string, schemaHash: string): Promise<CoalescedSchema | undefined> {
  const { rows } = await tx.query<CoalescedSchema>(
    'SELECT review_id, approved_by, columns FROM edge_coalesced_schemas WHERE project_id = $1 AND source_table = $2 AND schema_hash = $3',
    [projectId, sourceTable, schemaHash],
  );
  return rows[0];
}

/** Records an approval into a coalesced mirror; the latest approval of a schema is the one reused. */
export async function rememberCoalescedSchema(
  tx: Queryable,
  entry: { projectId: string; sourceTable: string; schemaHash: string; reviewId: string; approvedBy: ActorLabel; columns: readonly ColumnAction[] },
): Promise<void> {
  await tx.query(
    `INSERT INTO edge_coalesced_schemas (project_id, source_table, schema_hash, columns, review_id, approved_by) VALUES ($1, $2, $3, $4::jsonb, $5, $6)
     ON CONFLICT (project_id, source_table, schema_hash) DO UPDATE SET columns = EXCLUDED.columns, review_id = EXCLUDED.review_id, approved_by = EXCLUDED.approved_by, created_at = now()`,
    [entry.projectId, entry.sourceTable, entry.schemaHash, JSON.stringify(entry.columns), entry.reviewId, entry.approvedBy],
  );
}
