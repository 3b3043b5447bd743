import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { sleep } from '../../protocol/backoff.js';
import type { TableKey } from '../../protocol/schema.js';
import { quoteIdent } from '../identifiers.js';
import { sqlState, transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import type { PgType } from '../type-mapping.js';
import { lockLineageById } from './lineage.js';
import { isDigestedType, KEY_DIGEST_COLUMN, keyDigestSql, lockMirrorName, loadMirrorTarget, MirrorColumns, mirrorKeyColumns } from './mirror-schema.js';

/**
 * Converts mirrors made before digest keys (their primary key holds text, blob or
 * JSON key columns, so a key past btree's 2,704-byte entry limit is refused as
 * `row_rejected`) to the `_syncline_key_digest` layout new mirrors get, online:
 *
 * 1. (short transaction) add the nullable digest column, and a trigger that fills
 *    it on every insert and update, so rows ingested from now on have it;
 * 2. fill it for the rows already there, a few MB of the table per transaction
 *    (TID ranges: each row is visited once, ingest keeps flowing);
 * 3. build the new unique index CONCURRENTLY and a NOT NULL check NOT VALID, then
 *    validate the check (neither blocks ingest);
 * 4. (short transaction, holding every lineage of the mirror, so no ingest of it is
 *    in flight) set the column NOT NULL (the validated check spares the scan), swap
 *    the primary key to the new index, drop the trigger, and record the mirror as
 *    digest-keyed: from the next batch on, ingest writes the digest itself;
 * 5. hash indexes on the digested key columns, CONCURRENTLY, for lookups by value.
 *
 * Every step looks at what is there first, so a conversion cut short anywhere (a
 * crash, a lost connection, two servers at once) is finished by the next attempt;
 * an index left invalid by a build that died is dropped and built again once no
 * backend is building it. On PGlite (one connection, nothing concurrent) the index
 * builds are plain. Afterwards `onConverted` hears of the lineages, so rows the old
 * key refused can be tried again.
 */

/** Table blocks (8 kB each) whose rows get their digest in one transaction. */
const FILL_BLOCKS = 1024;
const RETRY_MS = 30_000;

interface Plan {
  table: string;
  lineageIds: string[];
  /** Key columns of the primary key that stay as they are (the device id of a coalesced mirror first). */
  kept: string[];
  /** Key columns that go into the digest, in key order. */
  digested: { column: string; type: PgType }[];
  names: { fn: string; index: string; check: string; hash: (column: string) => string };
}

/** Mirrors not yet digest-keyed whose key has a text, blob or JSON column, with their lineages. */
export async function legacyMirrors(db: Queryable): Promise<{ table: string; lineage_ids: string[] }[]> {
  const { rows } = await db.query<{ table: string; lineage_ids: string[] }>(
    `SELECT l.mirror_table AS table, array_agg(l.id::text ORDER BY l.id) AS lineage_ids
     FROM edge_table_lineages l
     WHERE l.mirror_table IS NOT NULL AND l.key_kind = 'primary_key'
       AND NOT EXISTS (SELECT 1 FROM edge_mirror_key_digests d WHERE d.mirror_table = l.mirror_table)
       AND EXISTS (SELECT 1 FROM edge_column_bindings b WHERE b.lineage_id = l.id AND b.pg_type IN ('text', 'bytea', 'jsonb') AND l.key_columns ? b.source_column)
     GROUP BY l.mirror_table ORDER BY l.mirror_table`,
  );
  return rows;
}

async function plan(db: Queryable, table: string, lineageIds: string[]): Promise<Plan> {
  const target = await loadMirrorTarget(db, { id: lineageIds[0]!, mirror_table: table, key: await lineageKey(db, lineageIds[0]!) });
  const typeOf = new Map([...target.bindings.values()].map((b) => [b.target_column, b.pg_type]));
  const keyColumns = mirrorKeyColumns(target.key, target.bindings);
  const digested = keyColumns.filter((c) => isDigestedType(typeOf.get(c) ?? 'bigint')).map((column) => ({ column, type: typeOf.get(column)! }));
  const kept = [...(target.coalesced ? [MirrorColumns.deviceId] : []), ...keyColumns.filter((c) => !digested.some((d) => d.column === c))];
  const h = createHash('sha256').update(table).digest('hex').slice(0, 16);
  return {
    table,
    lineageIds,
    kept,
    digested,
    names: { fn: `_syncline_kd_fill_${h}`, index: `_syncline_kd_${h}`, check: `_syncline_kd_nn_${h}`, hash: (column) => `_syncline_kd_${h}_${createHash('sha256').update(column).digest('hex').slice(0, 8)}` },
  };
}

async function lineageKey(db: Queryable, lineageId: string): Promise<TableKey> {
  const { rows } = await db.query<{ kind: TableKey['kind']; columns: string[] }>('SELECT key_kind AS kind, key_columns AS columns FROM edge_table_lineages WHERE id = $1', [lineageId]);
  if (!rows[0]) throw new Error(`lineage ${lineageId} is gone`);
  return rows[0];
}

const isConverted = async (db: Queryable, table: string) => (await db.query('SELECT 1 FROM edge_mirror_key_digests WHERE mirror_table = $1', [table])).rows.length > 0;

/** Converts one mirror; false when another process finished it first. */
export async function convertMirror(store: Store, table: string, lineageIds: string[], logger?: Logger): Promise<boolean> {
  const t = quoteIdent(table);
  // 1. The column and the trigger that fills it for new rows.
  const p = await transactionWithRetry(store, async (tx) => {
    await lockMirrorName(tx, table);
    if (await isConverted(tx, table)) return undefined;
    const planned = await plan(tx, table, lineageIds);
    await tx.exec(`ALTER TABLE ${t} ADD COLUMN IF NOT EXISTS ${quoteIdent(KEY_DIGEST_COLUMN)} bytea`);
    return planned;
  });
  if (!p) return false;
  const digestOf = (prefix: string) => keyDigestSql(p.digested.map((d) => ({ expr: `${prefix}${quoteIdent(d.column)}`, type: d.type })));
  const { fn, index, check } = p.names;
  await transactionWithRetry(store, async (tx) => {
    await lockMirrorName(tx, table);
    await tx.exec(`CREATE OR REPLACE FUNCTION ${quoteIdent(fn)}() RETURNS trigger LANGUAGE plpgsql AS $syncline$
BEGIN
  NEW.${quoteIdent(KEY_DIGEST_COLUMN)} := ${digestOf('NEW.')};
  RETURN NEW;
END
$syncline$`);
    await tx.exec(`CREATE OR REPLACE TRIGGER ${quoteIdent(fn)} BEFORE INSERT OR UPDATE ON ${t} FOR EACH ROW EXECUTE FUNCTION ${quoteIdent(fn)}()`);
  });
  logger?.info({ mirror: table }, 'converting a mirror to digest keys: filling digests');

  // 2. The rows already there, a range of blocks per transaction.
  const { rows: size } = await store.query<{ blocks: string }>(`SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::int)::text AS blocks`, [t]);
  const blocks = Number(size[0]?.blocks ?? 0);
  for (let from = 0; from < blocks; from += FILL_BLOCKS) {
    await store.query(
      `UPDATE ${t} SET ${quoteIdent(KEY_DIGEST_COLUMN)} = ${digestOf('')}
       WHERE ctid >= $1::tid AND ctid < $2::tid AND ${quoteIdent(KEY_DIGEST_COLUMN)} IS NULL`,
      [`(${from},0)`, `(${from + FILL_BLOCKS},0)`],
    );
  }

  // 3. The new unique index and the NOT NULL check, without blocking writes.
  const concurrently = store.kind === 'postgres' ? ' CONCURRENTLY' : '';
  await dropDeadIndex(store, table, index);
  await store.exec(`CREATE UNIQUE INDEX${concurrently} IF NOT EXISTS ${quoteIdent(index)} ON ${t} (${[...p.kept, KEY_DIGEST_COLUMN].map(quoteIdent).join(', ')})`);
  await transactionWithRetry(store, async (tx) => {
    await lockMirrorName(tx, table);
    const { rows } = await tx.query('SELECT 1 FROM pg_constraint WHERE conrelid = $1::regclass AND conname = $2', [t, check]);
    if (rows.length === 0) await tx.exec(`ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(check)} CHECK (${quoteIdent(KEY_DIGEST_COLUMN)} IS NOT NULL) NOT VALID`);
  });
  await store.exec(`ALTER TABLE ${t} VALIDATE CONSTRAINT ${quoteIdent(check)}`);

  // 4. The swap, with every lineage of the mirror held: no ingest of it is in flight, and the next one sees the new layout.
  const swapped = await transactionWithRetry(store, async (tx) => {
    for (const id of [...lineageIds].sort()) await lockLineageById(tx, id);
    await lockMirrorName(tx, table);
    if (await isConverted(tx, table)) return false;
    const { rows: valid } = await tx.query<{ valid: boolean }>('SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass($1)', [quoteIdent(index)]);
    if (!valid[0]?.valid) throw new Error(`the new key index of ${table} is not valid yet`);
    const { rows: pk } = await tx.query<{ name: string }>(`SELECT conname AS name FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'`, [t]);
    const pkName = pk[0]?.name ?? `${table.slice(0, 58)}_pkey`;
    await tx.exec(`ALTER TABLE ${t} ALTER COLUMN ${quoteIdent(KEY_DIGEST_COLUMN)} SET NOT NULL`);
    if (pk[0]) await tx.exec(`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(pkName)}`);
    await tx.exec(`ALTER TABLE ${t} ADD CONSTRAINT ${quoteIdent(pkName)} PRIMARY KEY USING INDEX ${quoteIdent(index)}`);
    await tx.exec(`ALTER TABLE ${t} DROP CONSTRAINT ${quoteIdent(check)}`);
    await tx.exec(`DROP TRIGGER ${quoteIdent(fn)} ON ${t}`);
    await tx.exec(`DROP FUNCTION ${quoteIdent(fn)}()`);
    await tx.query('INSERT INTO edge_mirror_key_digests (mirror_table) VALUES ($1)', [table]);
    return true;
  });

  // 5. Lookups by the key's value (the old primary key's index is gone).
  for (const d of p.digested) {
    const name = p.names.hash(d.column);
    await dropDeadIndex(store, table, name);
    await store.exec(`CREATE INDEX${concurrently} IF NOT EXISTS ${quoteIdent(name)} ON ${t} USING hash (${quoteIdent(d.column)})`);
  }
  if (swapped) logger?.info({ mirror: table, lineages: lineageIds.length }, 'mirror converted to digest keys');
  return swapped;
}

/** Drops an index a CONCURRENTLY build left invalid when it died, unless some backend is still building it. */
async function dropDeadIndex(store: Store, table: string, index: string): Promise<void> {
  const { rows } = await store.query<{ building: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_stat_progress_create_index WHERE relid = to_regclass($1)) AS building
     FROM pg_index WHERE indexrelid = to_regclass($2) AND NOT indisvalid`,
    [quoteIdent(table), quoteIdent(index)],
  );
  if (!rows[0]) return;
  if (rows[0].building) throw new Error(`the index ${index} of ${table} is being built by another process`);
  await store.exec(`DROP INDEX${store.kind === 'postgres' ? ' CONCURRENTLY' : ''} IF EXISTS ${quoteIdent(index)}`);
}

/**
 * Converts every legacy mirror, one at a time, until none is left or `signal`
 * aborts; a conversion that fails (the database away, another process mid-way)
 * is tried again after a while. Calls `onConverted` with the lineages of each
 * mirror converted.
 */
export async function convertLegacyMirrors(store: Store, options: { logger?: Logger; signal?: AbortSignal; onConverted?: (lineageIds: string[]) => void | Promise<void>; retryMs?: number }): Promise<void> {
  while (!options.signal?.aborted) {
    let failed = false;
    try {
      for (const mirror of await legacyMirrors(store)) {
        if (options.signal?.aborted) return;
        try {
          if (await convertMirror(store, mirror.table, mirror.lineage_ids, options.logger)) await options.onConverted?.(mirror.lineage_ids);
        } catch (error) {
          failed = true;
          options.logger?.warn({ mirror: mirror.table, err: error, sqlstate: sqlState(error) }, 'converting a mirror to digest keys failed; trying again later');
        }
      }
    } catch (error) {
      failed = true;
      options.logger?.warn({ err: error }, 'looking for mirrors to convert to digest keys failed; trying again later');
    }
    if (!failed) return;
    await sleep(options.retryMs ?? RETRY_MS, options.signal);
  }
}
