import { uuidv7 } from 'uuidv7';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import { coalescedMirrorCandidates, MIRROR_TABLE_PREFIX, mirrorNameCandidates, quoteIdent } from '../identifiers.js';
import type { Lineage } from '../ingest/lineage.js';
import {
  createMirror,
  insertBindings,
  loadMirrorTarget,
  lockMirrorName,
  mirrorKeyColumns,
  physicalColumns,
  type Binding,
  type MirrorTarget,
} from '../ingest/mirror-schema.js';
import type { Queryable } from '../store/store.js';
import { sameKey } from './classify.js';
import { findCoalescedMirror, registerCoalescedMirror, type Coalescing } from './coalescing.js';
import { planColumns, type ColumnAction, type ColumnPlan } from './column-plan.js';

export interface AppliedDecision {
  target: MirrorTarget;
  plan: ColumnPlan;
  /** The mirror the lineage wrote before it moved to another one (a key change); kept, no longer written. */
  previousMirror: string | null;
}

type Schema = { columns: readonly ColumnInfo[]; key: TableKey };

/**
 * Carries out column actions for `schema` on a lineage, in the caller's
 * transaction: alters the lineage's mirror when the key is unchanged; otherwise
 * (first schema, or a changed key, which needs a table of its own) binds it to a
 * new mirror, which under project coalescing is the project's shared mirror for
 * the table and key, created on first use. Every action is validated by
 * planColumns before anything is written.
 */
export async function applyColumnDecision(tx: Queryable, lineage: Lineage, schema: Schema, actions: readonly ColumnAction[], options: { coalescing: Coalescing }): Promise<AppliedDecision> {
  const current = lineage.mirror_table === null ? null : await loadMirrorTarget(tx, lineage);
  if (current && sameKey(current.key, schema.key)) return alterMirror(tx, lineage, current, schema, actions);
  const defaults = { bindings: current?.bindings ?? new Map<string, Binding>(), ignored: current?.ignored ?? new Set<string>() };
  const previousMirror = current?.table ?? null;
  // A lineage keeps the kind of mirror it has: only one without a mirror, or already coalesced, joins the shared one.
  if (options.coalescing === 'project' && (current === null || current.coalesced)) return joinCoalesced(tx, lineage, schema, actions, defaults, previousMirror);

  const plan = planColumns(schema, { ...defaults, physical: new Map(), shared: false }, actions, 'fresh');
  await resetBindings(tx, lineage.id);
  const candidates = [...mirrorNameCandidates(lineage.device_id, lineage.source_table, lineage.id), uniqueMirrorName()];
  const target = await createMirror(tx, lineage, schema.key, plan.bindings, { coalesced: false, candidates });
  await insertIgnored(tx, lineage.id, plan.ignored);
  return { target: { ...target, ignored: new Set(plan.ignored) }, plan, previousMirror };
}

/** A second mirror of one lineage (after a key change) cannot take the first one's names. */
const uniqueMirrorName = () => `${MIRROR_TABLE_PREFIX}m${uuidv7().replaceAll('-', '')}`;

async function alterMirror(tx: Queryable, lineage: Lineage, current: MirrorTarget, schema: Schema, actions: readonly ColumnAction[]): Promise<AppliedDecision> {
  if (current.coalesced) await lockMirrorName(tx, current.table);
  const physical = await physicalColumns(tx, current.table);
  const plan = planColumns(schema, { bindings: current.bindings, ignored: current.ignored, physical, shared: current.coalesced }, actions, 'alter');
  await addColumns(tx, current.table, plan.addColumns);
  if (plan.unbind.length > 0) await tx.query('DELETE FROM edge_column_bindings WHERE lineage_id = $1 AND source_column = ANY($2::text[])', [lineage.id, plan.unbind]);
  if (plan.unignore.length > 0) await tx.query('DELETE FROM edge_ignored_columns WHERE lineage_id = $1 AND source_column = ANY($2::text[])', [lineage.id, plan.unignore]);
  if (plan.upserts.length > 0) {
    await tx.query('DELETE FROM edge_column_bindings WHERE lineage_id = $1 AND source_column = ANY($2::text[])', [lineage.id, plan.upserts.map((b) => b.source_column)]);
    await insertBindings(tx, lineage.id, plan.upserts);
  }
  await insertIgnored(tx, lineage.id, plan.ignored);
  return { target: await loadMirrorTarget(tx, lineage), plan, previousMirror: null };
}

async function joinCoalesced(
  tx: Queryable,
  lineage: Lineage,
  schema: Schema,
  actions: readonly ColumnAction[],
  defaults: { bindings: ReadonlyMap<string, Binding>; ignored: ReadonlySet<string> },
  previousMirror: string | null,
): Promise<AppliedDecision> {
  // Devices joining (or creating) the same shared mirror at once take turns, so each sees the columns the other added.
  await lockMirrorName(tx, JSON.stringify(['coalesced', lineage.project_id, lineage.source_table, schema.key]));
  const shared = await findCoalescedMirror(tx, lineage.project_id, lineage.source_table, schema.key);
  const physical = shared ? await physicalColumns(tx, shared.table) : new Map<string, string>();
  const plan = planColumns(schema, { ...defaults, physical, shared: true, ...(shared ? { keyTargets: shared.key_targets } : {}) }, actions, 'fresh');
  await resetBindings(tx, lineage.id);
  let table: string;
  let digestKey: boolean;
  if (shared) {
    table = shared.table;
    digestKey = await isDigestKeyed(tx, table);
    await addColumns(tx, table, plan.addColumns);
    await insertBindings(tx, lineage.id, plan.bindings);
  } else {
    const candidates = [...coalescedMirrorCandidates(lineage.project_id, lineage.source_table, schema.key.columns), uniqueMirrorName()];
    const created = await createMirror(tx, lineage, schema.key, plan.bindings, { coalesced: true, candidates });
    table = created.table;
    digestKey = created.digestKey;
    const bound = new Map(plan.bindings.map((b) => [b.source_column, b]));
    await registerCoalescedMirror(tx, lineage.project_id, lineage.source_table, schema.key, { table, key_targets: mirrorKeyColumns(schema.key, bound) });
  }
  await insertIgnored(tx, lineage.id, plan.ignored);
  const target: MirrorTarget = { table, key: schema.key, bindings: new Map(plan.bindings.map((b) => [b.source_column, b])), ignored: new Set(plan.ignored), coalesced: true, digestKey };
  return { target, plan, previousMirror };
}

async function isDigestKeyed(tx: Queryable, table: string): Promise<boolean> {
  const { rows } = await tx.query('SELECT 1 FROM edge_mirror_key_digests WHERE mirror_table = $1', [table]);
  return rows.length > 0;
}

async function addColumns(tx: Queryable, table: string, columns: readonly Binding[]): Promise<void> {
  if (columns.length === 0) return;
  await tx.exec(`ALTER TABLE ${quoteIdent(table)} ${columns.map((b) => `ADD COLUMN ${quoteIdent(b.target_column)} ${b.pg_type}`).join(', ')}`);
}

async function resetBindings(tx: Queryable, lineageId: string): Promise<void> {
  await tx.query('DELETE FROM edge_column_bindings WHERE lineage_id = $1', [lineageId]);
  await tx.query('DELETE FROM edge_ignored_columns WHERE lineage_id = $1', [lineageId]);
}

async function insertIgnored(tx: Queryable, lineageId: string, columns: readonly string[]): Promise<void> {
  if (columns.length === 0) return;
  await tx.query(
    `INSERT INTO edge_ignored_columns (lineage_id, source_column) SELECT $1, c FROM unnest($2::text[]) AS c ON CONFLICT DO NOTHING`,
    [lineageId, columns],
  );
}
