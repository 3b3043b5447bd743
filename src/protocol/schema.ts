import { sha256Hex } from './sha256.js';

export type Affinity = 'INTEGER' | 'TEXT' | 'REAL' | 'BLOB' | 'NUMERIC';

/** One column of a source table, as the device reads it from `PRAGMA table_xinfo`. */
export interface ColumnInfo {
  name: string;
  /** The declared type text, verbatim (may be empty). */
  declared_type: string;
  affinity: Affinity;
  /** 0 when not part of the primary key, else the 1-based position in the key. */
  pk: number;
  notnull: boolean;
  /** True when the column has a DEFAULT clause (an added column with a default is additive). */
  has_default: boolean;
}

/**
 * How a row is identified. `rowid` is used for tables without a declared primary
 * key: the key is SQLite's rowid, which VACUUM may renumber, so the lineage says so.
 */
export interface TableKey {
  kind: 'primary_key' | 'rowid';
  columns: string[];
}

/** SQLite's affinity rules (https://sqlite.org/datatype3.html section 3.1), in their order. */
export function affinityOf(declaredType: string): Affinity {
  const t = declaredType.toUpperCase();
  if (t.includes('INT')) return 'INTEGER';
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'TEXT';
  if (t.includes('BLOB') || t.trim() === '') return 'BLOB';
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'REAL';
  return 'NUMERIC';
}

/**
 * The schema fingerprint: SHA-256 (lowercase hex) of canonical JSON of the columns
 * sorted by name, each with name, affinity, pk ordinal and not-null. Column order,
 * defaults, indexes and the declared type text are deliberately left out, so a
 * cosmetic change (VARCHAR(20) to TEXT) does not trigger a review.
 */
export function schemaFingerprint(columns: readonly ColumnInfo[]): string {
  // A fleet sends a handful of schemas over and over; the cloud checks every batch's (the hash in JS was most of a small batch's
  // parse). The cache key is the columns in the order received, written out without sorting, copying or JSON (a third of what
  // the canonical form costs); strings carry their length, so no two column lists share a key.
  let key = '';
  for (const c of columns) key += `${c.name.length}:${c.name}${c.affinity.length}:${c.affinity}${c.notnull}${c.pk};`;
  let hash = fingerprints.get(key);
  if (hash === undefined) {
    if (fingerprints.size >= MAX_FINGERPRINTS) fingerprints.clear();
    hash = sha256Hex(canonicalColumns(columns));
    fingerprints.set(key, hash);
  }
  return hash;
}

function canonicalColumns(columns: readonly ColumnInfo[]): string {
  return JSON.stringify(
    [...columns].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((c) => ({ affinity: c.affinity, name: c.name, notnull: c.notnull, pk: c.pk })),
  );
}

const MAX_FINGERPRINTS = 1024;
const fingerprints = new Map<string, string>();

/** Key columns in key order; the rowid key when the table declares none. */
export function keyOf(columns: readonly ColumnInfo[]): TableKey {
  const pk = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  return pk.length > 0 ? { kind: 'primary_key', columns: pk.map((c) => c.name) } : { kind: 'rowid', columns: ['rowid'] };
}
