import type { Affinity, ColumnInfo, TableKey } from '../../protocol/schema.js';
import { newMirrorTypes } from '../ingest/mirror-schema.js';
import { pgTypeFor, type PgType } from '../type-mapping.js';
import { tooWideReason } from './row-width.js';
import { isSafeCast } from './safe-casts.js';

/**
 * How a schema a device sends relates to what its lineage's mirror follows.
 *
 * - compatible_mapped: every column is bound or ignored, with unchanged affinity
 *   and key (only cosmetic or NOT NULL differences); rows materialize as they are.
 * - compatible_additive: everything bound is still there unchanged, plus new
 *   columns that are nullable or have a default.
 * - ambiguous: the first schema of a lineage, or anything unclear: a new NOT NULL
 *   column without default (the table was rebuilt), a column neither bound nor
 *   ignored, a bound column coming back with an affinity its mirror column
 *   cannot hold.
 * - breaking: a bound column was dropped or changed affinity, or the key changed.
 */
export type Classification = 'compatible_mapped' | 'compatible_additive' | 'ambiguous' | 'breaking';

export interface SchemaSnapshot {
  columns: readonly ColumnInfo[];
  key: TableKey;
}

/** What an operator decided so far: source columns with a mirror column (and its type), and ignored ones. */
export interface BoundColumns {
  bound: ReadonlyMap<string, PgType>;
  ignored: ReadonlySet<string>;
}

export interface SchemaComparison {
  classification: Classification;
  /** No schema was accepted for the lineage before. */
  first: boolean;
  /** New columns, neither bound nor ignored. */
  added: ColumnInfo[];
  /** Bound columns the schema no longer has. */
  dropped: string[];
  /** Bound columns whose affinity changed. */
  retyped: { name: string; from: Affinity; to: Affinity }[];
  keyChanged: boolean;
  /** Why the schema is ambiguous, one phrase each. */
  unclear: string[];
  /** One human-readable sentence; becomes the lineage's status reason when it pauses. */
  summary: string;
}

export function sameKey(a: TableKey, b: TableKey): boolean {
  return a.kind === b.kind && a.columns.length === b.columns.length && a.columns.every((c, i) => c === b.columns[i]);
}

const names = (list: readonly string[]) => list.map((n) => JSON.stringify(n)).join(', ');

/**
 * Classifies the incoming schema against the previous one the lineage accepted
 * (null for a first schema) and the decisions bound to it. Pure. Ignored columns
 * may come, go or change affinity: nothing of them is stored.
 */
export function classifySchema(decided: BoundColumns, previous: SchemaSnapshot | null, incoming: SchemaSnapshot): SchemaComparison {
  const empty = { added: [] as ColumnInfo[], dropped: [] as string[], retyped: [] as SchemaComparison['retyped'], keyChanged: false, unclear: [] as string[] };
  const wide = widthProblem(decided, incoming);
  if (previous === null) {
    const added = incoming.columns.filter((c) => !decided.ignored.has(c.name));
    if (wide) return { ...empty, classification: 'ambiguous', first: true, added, unclear: [wide], summary: `first schema of this table; ${wide}` };
    return { ...empty, classification: 'ambiguous', first: true, added, summary: 'first schema of this table' };
  }
  const before = new Map(previous.columns.map((c) => [c.name, c]));
  const after = new Set(incoming.columns.map((c) => c.name));
  const result = { ...empty, keyChanged: !sameKey(previous.key, incoming.key) };
  result.dropped = previous.columns.filter((c) => !after.has(c.name) && decided.bound.has(c.name)).map((c) => c.name);
  for (const column of incoming.columns) {
    if (decided.ignored.has(column.name)) continue;
    const prior = before.get(column.name);
    const type = decided.bound.get(column.name);
    if (type !== undefined) {
      if (prior && prior.affinity !== column.affinity) result.retyped.push({ name: column.name, from: prior.affinity, to: column.affinity });
      else if (!prior && !isSafeCast(column, type)) result.unclear.push(`${JSON.stringify(column.name)} returns as ${column.affinity}, its mirror column is ${type}`);
    } else if (prior) {
      result.unclear.push(`${JSON.stringify(column.name)} is neither mirrored nor ignored`);
    } else {
      result.added.push(column);
      if (column.notnull && !column.has_default) result.unclear.push(`new column ${JSON.stringify(column.name)} is NOT NULL without a default (table rebuilt?)`);
    }
  }

  if (wide) result.unclear.push(wide);

  const breaking: string[] = [];
  if (result.keyChanged) breaking.push(`key changed from (${names(previous.key.columns)}) to (${names(incoming.key.columns)})`);
  if (result.dropped.length > 0) breaking.push(`dropped ${names(result.dropped)}`);
  if (result.retyped.length > 0) breaking.push(`changed affinity of ${result.retyped.map((r) => `${JSON.stringify(r.name)} (${r.from} to ${r.to})`).join(', ')}`);
  if (breaking.length > 0) return { ...result, classification: 'breaking', first: false, summary: `breaking schema change: ${breaking.join('; ')}` };
  if (result.unclear.length > 0) return { ...result, classification: 'ambiguous', first: false, summary: `unclear schema change: ${result.unclear.join('; ')}` };
  if (result.added.length > 0) return { ...result, classification: 'compatible_additive', first: false, summary: `added ${names(result.added.map((c) => c.name))}` };
  return { ...result, classification: 'compatible_mapped', first: false, summary: 'schema matches the bound columns' };
}

/** A schema whose mirror rows could not fit in one PostgreSQL row, mirrored as decided so far (the approval checks exactly). */
function widthProblem(decided: BoundColumns, incoming: SchemaSnapshot): string | null {
  const mirrored = incoming.columns.filter((c) => !decided.ignored.has(c.name));
  const bindings = mirrored.map((c) => ({ source_column: c.name, target_column: c.name, pg_type: decided.bound.get(c.name) ?? pgTypeFor(c) }));
  return tooWideReason(newMirrorTypes(incoming.key, bindings));
}
