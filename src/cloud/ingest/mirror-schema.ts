import type { RowBatch } from '../../protocol/batch.js';
import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import type { SchemaSnapshot } from '../governance/classify.js';
import { quoteIdent } from '../identifiers.js';
import type { Queryable } from '../store/store.js';
import { isPgType, type PgType } from '../type-mapping.js';
import type { Lineage } from './lineage.js';

/** Columns every mirror has besides the source's own; the prefix keeps them apart. */
export const MirrorColumns = {
  rowid: '_syncline_rowid',
  deviceId: '_syncline_device_id',
  epoch: '_syncline_epoch',
  seq: '_syncline_seq',
  batchId: '_syncline_batch_id',
  op: '_syncline_op',
  ingestedAt: '_syncline_ingested_at',
  overflow: '_syncline_overflow',
} as const;

/** PostgreSQL allows 1,600 columns per table; the metadata columns take 8 of them. */
export const MAX_MIRRORED_COLUMNS = 1600 - Object.keys(MirrorColumns).length;

/** A source column and the mirror column that holds it. */
export interface Binding {
  source_column: string;
  target_column: string;
  pg_type: PgType;
}

/** Where and how a lineage's rows are materialized. */
export interface MirrorTarget {
  table: string;
  key: TableKey;
  bindings: Map<string, Binding>;
  /** Source columns an operator chose not to mirror; their values are left out. */
  ignored: Set<string>;
  /** A coalesced mirror, shared by a project's devices: keyed by device id plus the key. */
  coalesced: boolean;
}

/** A bounded lock space for mirror names, apart from the migration lock key. */
const MIRROR_NAME_LOCK_CLASS = 73_665;

/**
 * Serializes transactions that create or alter one mirror (or claim its name):
 * two lineages joining a coalesced mirror at once would otherwise both add the
 * same column, or both find a name free.
 */
export async function lockMirrorName(tx: Queryable, name: string): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [MIRROR_NAME_LOCK_CLASS, name]);
}

/** Columns that physically exist in a table, with their types as PostgreSQL spells them. */
export async function physicalColumns(tx: Queryable, table: string): Promise<Map<string, string>> {
  const { rows } = await tx.query<{ name: string; type: string }>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
     WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`,
    [quoteIdent(table)],
  );
  return new Map(rows.map((r) => [r.name, r.type]));
}

export async function recordSchema(tx: Queryable, lineageId: string, batch: RowBatch): Promise<void> {
  await tx.query(
    `INSERT INTO edge_schemas (lineage_id, hash, columns, key) VALUES ($1, $2, $3::jsonb, $4::jsonb)
     ON CONFLICT (lineage_id, hash) DO NOTHING`,
    [lineageId, batch.schema.hash, JSON.stringify(batch.schema.columns), JSON.stringify(batch.key)],
  );
}

export async function loadSchema(tx: Queryable, lineageId: string, hash: string): Promise<SchemaSnapshot> {
  const { rows } = await tx.query<{ columns: ColumnInfo[]; key: TableKey }>('SELECT columns, key FROM edge_schemas WHERE lineage_id = $1 AND hash = $2', [lineageId, hash]);
  const row = rows[0];
  if (!row) throw new SynclineError('internal', 'the bound schema of a lineage is missing', { lineage_id: lineageId, schema_hash: hash });
  return { columns: row.columns, key: row.key };
}

export async function loadMirrorTarget(tx: Queryable, lineage: Pick<Lineage, 'id' | 'mirror_table' | 'key'>): Promise<MirrorTarget> {
  if (lineage.mirror_table === null) throw new SynclineError('internal', 'lineage has no mirror table', { lineage_id: lineage.id });
  const { rows } = await tx.query<{ source_column: string; target_column: string; pg_type: string }>(
    'SELECT source_column, target_column, pg_type FROM edge_column_bindings WHERE lineage_id = $1',
    [lineage.id],
  );
  const bindings = new Map<string, Binding>();
  for (const row of rows) {
    if (!isPgType(row.pg_type)) throw new SynclineError('internal', `unknown mirror column type ${row.pg_type}`, { lineage_id: lineage.id });
    bindings.set(row.source_column, { source_column: row.source_column, target_column: row.target_column, pg_type: row.pg_type });
  }
  const ignored = await tx.query<{ source_column: string; coalesced: boolean }>(
    `SELECT source_column, false AS coalesced FROM edge_ignored_columns WHERE lineage_id = $1
     UNION ALL SELECT NULL, true FROM edge_coalesced_mirrors WHERE mirror_table = $2`,
    [lineage.id, lineage.mirror_table],
  );
  return {
    table: lineage.mirror_table,
    key: lineage.key,
    bindings,
    ignored: new Set(ignored.rows.filter((r) => !r.coalesced).map((r) => r.source_column)),
    coalesced: ignored.rows.some((r) => r.coalesced),
  };
}

export async function insertBindings(tx: Queryable, lineageId: string, bindings: readonly Binding[]): Promise<void> {
  if (bindings.length === 0) return;
  await tx.query(
    `INSERT INTO edge_column_bindings (lineage_id, source_column, target_column, pg_type)
     SELECT $1, b.s, b.t, b.p FROM unnest($2::text[], $3::text[], $4::text[]) AS b(s, t, p)`,
    [lineageId, bindings.map((b) => b.source_column), bindings.map((b) => b.target_column), bindings.map((b) => b.pg_type)],
  );
}

/**
 * Creates a mirror table with the given bindings and records them. A device
 * mirror is keyed by the source key; a coalesced one by the device id plus the
 * source key. `candidates` are the names to try, in order; the first free one is taken.
 */
export async function createMirror(
  tx: Queryable,
  lineage: Lineage,
  key: TableKey,
  bindings: readonly Binding[],
  options: { coalesced: boolean; candidates: readonly string[] },
): Promise<MirrorTarget> {
  const table = await chooseMirrorName(tx, lineage, options.candidates);
  const bound = new Map(bindings.map((b) => [b.source_column, b]));
  const keyColumns = [...(options.coalesced ? [MirrorColumns.deviceId] : []), ...mirrorKeyColumns(key, bound)];
  const keySet = new Set(keyColumns);
  const definitions = [
    ...(key.kind === 'rowid' ? [`${quoteIdent(MirrorColumns.rowid)} bigint NOT NULL`] : []),
    ...bindings.map((b) => `${quoteIdent(b.target_column)} ${b.pg_type}${keySet.has(b.target_column) ? ' NOT NULL' : ''}`),
    `${quoteIdent(MirrorColumns.deviceId)} uuid NOT NULL`,
    `${quoteIdent(MirrorColumns.epoch)} text NOT NULL`,
    `${quoteIdent(MirrorColumns.seq)} bigint NOT NULL`,
    `${quoteIdent(MirrorColumns.batchId)} uuid NOT NULL`,
    `${quoteIdent(MirrorColumns.op)} text NOT NULL`,
    `${quoteIdent(MirrorColumns.ingestedAt)} timestamptz NOT NULL DEFAULT now()`,
    `${quoteIdent(MirrorColumns.overflow)} jsonb`,
    `PRIMARY KEY (${keyColumns.map(quoteIdent).join(', ')})`,
  ];
  await tx.exec(`CREATE TABLE ${quoteIdent(table)} (\n  ${definitions.join(',\n  ')}\n)`);
  await insertBindings(tx, lineage.id, bindings);
  return { table, key, bindings: new Map(bound), ignored: new Set(), coalesced: options.coalesced };
}

/** The mirror columns holding a source key, in key order. */
export function mirrorKeyColumns(key: TableKey, bindings: ReadonlyMap<string, Binding>): string[] {
  return key.kind === 'rowid' ? [MirrorColumns.rowid] : key.columns.map((c) => bindings.get(c)?.target_column ?? c);
}

async function chooseMirrorName(tx: Queryable, lineage: Lineage, candidates: readonly string[]): Promise<string> {
  for (const name of candidates) {
    await lockMirrorName(tx, name);
    const { rows } = await tx.query<{ taken: boolean }>(
      `SELECT to_regclass($1) IS NOT NULL OR EXISTS (SELECT 1 FROM edge_table_lineages WHERE mirror_table = $2) AS taken`,
      [quoteIdent(name), name],
    );
    if (!rows[0]?.taken) return name;
  }
  throw new SynclineError('internal', 'no free mirror table name', { lineage_id: lineage.id, table: lineage.source_table });
}
