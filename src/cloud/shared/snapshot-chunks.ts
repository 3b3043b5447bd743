import type { SharedColumnType, SharedTable } from '../../protocol/shared-sync.js';
import { quoteIdent as q } from '../identifiers.js';
import type { Queryable } from '../store/store.js';
import { MetaColumns as M, castSharedFromText, scopeColumn, sharedTableRef, wireJsonSql } from './shared-columns.js';

/** One encoded chunk: the JSON body a device receives, and how many rows it holds. */
export interface EncodedChunk {
  body: string;
  rows: number;
}

/**
 * Reads one table of a scope in primary-key order, a page at a time (keyset on the
 * key, which the primary key's index serves), and hands each page to `emit` as the
 * chunk body the device receives. The next page is asked for before this one is
 * emitted, so PostgreSQL reads while the chunk is stored.
 */
export async function readTableChunks(tx: Queryable, scope: string, table: SharedTable, requester: string, chunkRows: number, emit: (chunk: EncodedChunk) => Promise<void>): Promise<void> {
  const keyColumns = table.key.map((name) => table.columns.find((c) => c.name === name)!);
  const head = JSON.stringify({ table: table.name, columns: table.columns.map((c) => c.name) }).slice(0, -1);
  const order = keyColumns.map((c) => q(c.name)).join(', ');
  const after = `(${order}) > (${keyColumns.map((c, i) => castSharedFromText(`$${i + 4}`, c.type)).join(', ')})`;
  // PostgreSQL renders each row as its wire JSON: this process then only joins text.
  const row = `json_build_array(${table.columns.map((c) => wireJsonSql(q(c.name), c.type)).join(', ')})::text`;
  const select = (from: boolean) => `SELECT ${row} AS j, ${q(M.version)}::text AS v, ${q(M.hlc)} AS h, ${q(M.source)} = $3 AS own, ${keyColumns.map((c, i) => `${q(c.name)} AS k${i}`).join(', ')}
    FROM ${sharedTableRef(table)} WHERE ${q(scopeColumn(table))} = $1${from ? ` AND ${after}` : ''} ORDER BY ${order} LIMIT $2`;
  const first = select(false);
  const rest = select(true);
  const page = (last?: Record<string, unknown>) =>
    tx.query<Record<string, unknown>>(last ? rest : first, [scope, chunkRows, requester, ...(last ? keyColumns.map((c, i) => keyParam(last[`k${i}`], c.type)) : [])]);
  for (let next = page(); ; ) {
    const { rows } = await next;
    const more = rows.length === chunkRows;
    if (more) next = page(rows.at(-1));
    if (rows.length > 0) {
      const own = rows.flatMap((r, i) => (r.own === true ? [i] : []));
      const body = `${head},"rows":[${rows.map((r) => r.j).join(',')}],"versions":${JSON.stringify(rows.map((r) => r.v))},"hlcs":${JSON.stringify(rows.map((r) => r.h))},"own":${JSON.stringify(own)}}`;
      await emit({ body, rows: rows.length });
    }
    if (!more) return;
  }
}

/** A key value as read from the store, as the text castSharedFromText turns back into it. */
function keyParam(value: unknown, type: SharedColumnType): string {
  return type === 'BLOB' ? Buffer.from(value as Uint8Array).toString('hex') : String(value);
}
