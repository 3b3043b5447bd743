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

/** The key column of a digest-keyed mirror (see `isDigestKey`); not among MirrorColumns, which every mirror has. */
export const KEY_DIGEST_COLUMN = '_syncline_key_digest';

/** PostgreSQL allows 1,600 columns per table; the metadata columns take 8 of them (a table that wide is refused as too wide for one row anyway). */
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
  /** Uniqueness on KEY_DIGEST_COLUMN instead of the text, blob and JSON key columns themselves. */
  digestKey: boolean;
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
  await recordSchemas(tx, [{ lineageId, batch }]);
}

/** Keeps the schemas batches were sent in (each once per lineage), in one statement. */
export async function recordSchemas(tx: Queryable, entries: readonly { lineageId: string; batch: RowBatch }[]): Promise<void> {
  if (entries.length === 0) return;
  await tx.query(
    `INSERT INTO edge_schemas (lineage_id, hash, columns, key)
     SELECT l, h, (c)::jsonb, (k)::jsonb FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(l, h, c, k)
     ON CONFLICT (lineage_id, hash) DO NOTHING`,
    [entries.map((e) => e.lineageId), entries.map((e) => e.batch.schema.hash), entries.map((e) => JSON.stringify(e.batch.schema.columns)), entries.map((e) => JSON.stringify(e.batch.key))],
  );
}

export async function loadSchema(tx: Queryable, lineageId: string, hash: string): Promise<SchemaSnapshot> {
  const { rows } = await tx.query<{ columns: ColumnInfo[]; key: TableKey }>('SELECT columns, key FROM edge_schemas WHERE lineage_id = $1 AND hash = $2', [lineageId, hash]);
  const row = rows[0];
  if (!row) throw new SynclineError('internal', 'the bound schema of a lineage is missing', { lineage_id: lineageId, schema_hash: hash });
  return { columns: row.columns, key: row.key };
}

export async function loadMirrorTarget(tx: Queryable, lineage: Pick<Lineage, 'id' | 'mirror_table' | 'key'>): Promise<MirrorTarget> {
  return (await loadMirrorTargets(tx, [lineage])).get(lineage.id)!;
}

/** The mirror targets of many lineages in two statements, by lineage id. */
export async function loadMirrorTargets(tx: Queryable, lineages: readonly Pick<Lineage, 'id' | 'mirror_table' | 'key'>[]): Promise<Map<string, MirrorTarget>> {
  const targets = new Map<string, MirrorTarget>();
  if (lineages.length === 0) return targets;
  for (const lineage of lineages) if (lineage.mirror_table === null) throw new SynclineError('internal', 'lineage has no mirror table', { lineage_id: lineage.id });
  const ids = lineages.map((l) => l.id);
  const tables = [...new Set(lineages.map((l) => l.mirror_table!))];
  const { rows } = await tx.query<{ lineage_id: string; source_column: string; target_column: string; pg_type: string }>(
    'SELECT lineage_id::text, source_column, target_column, pg_type FROM edge_column_bindings WHERE lineage_id = ANY($1::uuid[])',
    [ids],
  );
  // name: a lineage id for its ignored columns, a mirror table for the two table-wide kinds.
  const marks = await tx.query<{ name: string; source_column: string | null; kind: 'ignored' | 'coalesced' | 'digest' }>(
    `SELECT lineage_id::text AS name, source_column, 'ignored' AS kind FROM edge_ignored_columns WHERE lineage_id = ANY($1::uuid[])
     UNION ALL SELECT mirror_table, NULL, 'coalesced' FROM edge_coalesced_mirrors WHERE mirror_table = ANY($2::text[])
     UNION ALL SELECT mirror_table, NULL, 'digest' FROM edge_mirror_key_digests WHERE mirror_table = ANY($2::text[])`,
    [ids, tables],
  );
  const bindingsOf = new Map<string, Map<string, Binding>>();
  for (const row of rows) {
    if (!isPgType(row.pg_type)) throw new SynclineError('internal', `unknown mirror column type ${row.pg_type}`, { lineage_id: row.lineage_id });
    const bindings = bindingsOf.get(row.lineage_id) ?? new Map<string, Binding>();
    bindings.set(row.source_column, { source_column: row.source_column, target_column: row.target_column, pg_type: row.pg_type });
    bindingsOf.set(row.lineage_id, bindings);
  }
  const marked = new Set(marks.rows.map((m) => `${m.kind}\u0000${m.name}`));
  for (const lineage of lineages) {
    targets.set(lineage.id, {
      table: lineage.mirror_table!,
      key: lineage.key,
      bindings: bindingsOf.get(lineage.id) ?? new Map(),
      ignored: new Set(marks.rows.filter((m) => m.kind === 'ignored' && m.name === lineage.id).map((m) => m.source_column!)),
      coalesced: marked.has(`coalesced\u0000${lineage.mirror_table}`),
      digestKey: marked.has(`digest\u0000${lineage.mirror_table}`),
    });
  }
  return targets;
}

export async function insertBindings(tx: Queryable, lineageId: string, bindings: readonly Binding[]): Promise<void> {
  if (bindings.length === 0) return;
  await tx.query(
    `INSERT INTO edge_column_bindings (lineage_id, source_column, target_column, pg_type)
     SELECT $1, b.s, b.t, b.p FROM unnest($2::text[], $3::text[], $4::text[]) AS b(s, t, p)`,
    [lineageId, bindings.map((b) => b.source_column), bindings.map((b) => b.target_column), bindings.map((b) => b.pg_type)],
  );
}

/** The column types of a new mirror for these bindings, in column order (what createMirror creates). */
export function newMirrorTypes(key: TableKey, bindings: readonly Binding[]): string[] {
  const digest = isDigestKey(key, new Map(bindings.map((b) => [b.source_column, b])));
  return [
    ...(key.kind === 'rowid' ? ['bigint'] : []),
    ...bindings.map((b) => b.pg_type),
    // device id, epoch, seq, batch id, op, ingested at, overflow
    'uuid', 'text', 'bigint', 'uuid', 'text', 'timestamp with time zone', 'jsonb',
    ...(digest ? ['bytea'] : []),
  ];
}

/**
 * Key column types whose values can outgrow a btree entry (about 2.7 kB): a
 * mirror keyed by one of them enforces uniqueness on a digest of the key instead.
 */
const VARIABLE_KEY_TYPES: ReadonlySet<PgType> = new Set(['text', 'bytea', 'jsonb']);

/** Whether a new mirror for these key bindings is digest-keyed. */
export function isDigestKey(key: TableKey, bindings: ReadonlyMap<string, Binding>): boolean {
  return key.kind === 'primary_key' && key.columns.some((c) => VARIABLE_KEY_TYPES.has(bindings.get(c)?.pg_type ?? 'bigint'));
}

/** Whether a key column of this type goes into the digest (rather than into the unique index itself). */
export function isDigestedType(type: PgType): boolean {
  return VARIABLE_KEY_TYPES.has(type);
}

/**
 * SQL computing `_syncline_key_digest` from the values of the digested key columns
 * (in key order): SHA-256 over each value's bytes (UTF-8 text, the blob itself,
 * the JSON text) prefixed by their length, so no two keys share a digest input.
 */
export function keyDigestSql(parts: readonly { expr: string; type: PgType }[]): string {
  const framed = parts.map(({ expr, type }) => {
    const bytes = type === 'bytea' ? `(${expr})` : `convert_to((${expr})::text, 'UTF8')`;
    return `int4send(octet_length(${bytes})) || ${bytes}`;
  });
  return `sha256(${framed.join(' || ')})`;
}

/**
 * Creates a mirror table with the given bindings and records them. A device
 * mirror is keyed by the source key; a coalesced one by the device id plus the
 * source key. `candidates` are the names to try, in order; the first free one is taken.
 *
 * A key with text, blob or JSON columns is digest-keyed: the primary key holds the
 * other key columns and `_syncline_key_digest`, the key columns themselves keep
 * every value exact (NOT NULL, with a hash index each for lookups by value), so a
 * key of any length the device accepts has its row.
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
  const digestKey = isDigestKey(key, bound);
  const sourceKey = mirrorKeyColumns(key, bound);
  const keySet = new Set(sourceKey);
  const digested = digestKey ? bindings.filter((b) => keySet.has(b.target_column) && isDigestedType(b.pg_type)).map((b) => b.target_column) : [];
  const primary = [...(options.coalesced ? [MirrorColumns.deviceId] : []), ...sourceKey.filter((c) => !digested.includes(c)), ...(digestKey ? [KEY_DIGEST_COLUMN] : [])];
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
    ...(digestKey ? [`${quoteIdent(KEY_DIGEST_COLUMN)} bytea NOT NULL`] : []),
    `PRIMARY KEY (${primary.map(quoteIdent).join(', ')})`,
  ];
  await tx.exec(`CREATE TABLE ${quoteIdent(table)} (\n  ${definitions.join(',\n  ')}\n)`);
  for (const column of digested) await tx.exec(`CREATE INDEX ON ${quoteIdent(table)} USING hash (${quoteIdent(column)})`);
  if (digestKey) await tx.query('INSERT INTO edge_mirror_key_digests (mirror_table) VALUES ($1)', [table]);
  await insertBindings(tx, lineage.id, bindings);
  return { table, key, bindings: new Map(bound), ignored: new Set(), coalesced: options.coalesced, digestKey };
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
