import type { Lineage } from '../ingest/lineage.js';
import { loadSchema } from '../ingest/mirror-schema.js';
import type { Queryable } from '../store/store.js';
import { isPgType, type PgType } from '../type-mapping.js';
import { classifySchema, type BoundColumns, type SchemaComparison, type SchemaSnapshot } from './classify.js';

/** What an operator decided so far for a lineage: bound columns with their types, and ignored ones. */
async function decidedColumns(tx: Queryable, lineageId: string): Promise<BoundColumns> {
  const { rows } = await tx.query<{ source_column: string; pg_type: string | null }>(
    `SELECT source_column, pg_type FROM edge_column_bindings WHERE lineage_id = $1
     UNION ALL SELECT source_column, NULL FROM edge_ignored_columns WHERE lineage_id = $1`,
    [lineageId],
  );
  const bound = new Map<string, PgType>();
  const ignored = new Set<string>();
  for (const row of rows) {
    if (row.pg_type === null) ignored.add(row.source_column);
    else if (isPgType(row.pg_type)) bound.set(row.source_column, row.pg_type);
  }
  return { bound, ignored };
}

/** Classifies `next` against the schema the lineage follows and its decisions. */
export async function compareToLineage(
  tx: Queryable,
  lineage: Pick<Lineage, 'id' | 'schema_hash'>,
  next: SchemaSnapshot,
): Promise<{ comparison: SchemaComparison; previous: SchemaSnapshot | null; decided: BoundColumns }> {
  const previous = lineage.schema_hash === null ? null : await loadSchema(tx, lineage.id, lineage.schema_hash);
  const decided = await decidedColumns(tx, lineage.id);
  return { comparison: classifySchema(decided, previous, next), previous, decided };
}
