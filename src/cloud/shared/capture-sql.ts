import { createHash } from 'node:crypto';
import type { SharedTable } from '../../protocol/shared-sync.js';
import { quoteIdent as q } from '../identifiers.js';
import { MetaColumns as M, keyTextSql, scopeColumn, wireJsonSql } from './shared-columns.js';

/**
 * The PostgreSQL objects that turn any write to a shared table into bundles.
 *
 * Why triggers and not logical decoding: they run on PGlite (the embedded default)
 * and on any PostgreSQL without `wal_level=logical` or a replication slot, and they
 * run inside the writer's transaction, so the bundle commits with the write or not
 * at all. Commit order comes from the scope row lock (see syncline_open_bundle in
 * migration 10), taken by the first write of a scope and held until commit, exactly
 * as a device push holds it.
 *
 * Two triggers per table:
 * - BEFORE ROW fills Syncline's columns (key text, version = the transaction's
 *   bundle_seq for the row's scope, source `backend`, an HLC from the clock), so a
 *   plain INSERT naming only the table's own columns and the scope works.
 * - AFTER STATEMENT (one per operation, with transition tables) appends the
 *   statement's rows to the bundle in one set-based INSERT and keeps tombstones.
 * Both do nothing while `syncline.applying` is on: Syncline's own writes (device
 * pushes, admin bundles) set it for their transaction, so nothing is captured twice.
 * TRUNCATE is refused: no row trigger would see it and devices would keep the rows.
 */

export const APPLYING_SETTING = 'syncline.applying';
export const CAPTURE_PREFIX = 'syncline_capture_';
export const BACKEND_SOURCE = 'backend';

/** Function names are per table; a digest keeps them within 63 bytes whatever the table is called. */
export function captureFunctionName(schema: string, table: string, part: 'row' | 'stmt' | 'truncate'): string {
  const digest = createHash('sha256').update(`${schema}.${table}`).digest('hex').slice(0, 16);
  return `${CAPTURE_PREFIX}${part}_${digest}`;
}

const skipWhenApplying = (returns: string) => `IF current_setting('${APPLYING_SETTING}', true) = 'on' THEN RETURN ${returns}; END IF;`;
const seqOf = (scope: string) => `current_setting('syncline.b' || md5(${scope}), true)`;
const hlcSql = `lpad((extract(epoch from clock_timestamp()) * 1000)::bigint::text, 15, '0') || '-000000-${BACKEND_SOURCE}'`;

/**
 * The SQL installing capture on one table (idempotent: functions and triggers are
 * replaced). `meta` is the schema of Syncline's own tables, `target` the table.
 */
export function captureSql(table: SharedTable, target: { schema: string; name: string }, meta: string): string {
  const ref = `${q(target.schema)}.${q(target.name)}`;
  const fn = (part: 'row' | 'stmt' | 'truncate') => `${q(meta)}.${q(captureFunctionName(target.schema, target.name, part))}`;
  const open = `${q(meta)}.syncline_open_bundle`;
  const scope = q(scopeColumn(table));
  const name = `'${table.name.replaceAll("'", "''")}'`;
  const rowJson = (alias: string) => `json_build_array(${table.columns.map((c) => wireJsonSql(`${alias}.${q(c.name)}`, c.type)).join(', ')})::jsonb`;
  const bundleRows = (changes: string, tombstones: string) => `
    WITH c AS (
      SELECT u.*, row_number() OVER (PARTITION BY u.s ORDER BY u.ord) AS i FROM (${changes}) u
    ), x AS (SELECT s, v, count(*) AS cnt FROM c GROUP BY s, v),
    b AS (
      UPDATE ${q(meta)}.sync_bundles b SET row_count = b.row_count + x.cnt FROM x
       WHERE b.scope = x.s AND b.bundle_seq = x.v RETURNING b.scope, b.bundle_seq, b.row_count - x.cnt AS base
    )${tombstones}
    INSERT INTO ${q(meta)}.sync_bundle_rows (scope, bundle_seq, ordinal, tbl, op, key, row, hlc)
    SELECT c.s, c.v, b.base + c.i - 1, ${name}, c.op, c.k::jsonb, c.r, c.h FROM c JOIN b ON b.scope = c.s AND b.bundle_seq = c.v;`;
  const upserts = (alias: string, ord: number) =>
    `SELECT ${alias}.${scope} AS s, ${alias}.${q(M.version)} AS v, 'U'::"char" AS op, ${alias}.${q(M.key)} AS k, ${rowJson(alias)} AS r, ${alias}.${q(M.hlc)} AS h, ${ord} AS ord FROM syncline_new ${alias}`;
  const deletes = (where: string) =>
    `SELECT o.${scope} AS s, (${seqOf(`o.${scope}`)})::bigint AS v, 'D'::"char" AS op, o.${q(M.key)} AS k, NULL::jsonb AS r, ${hlcSql} AS h, 0 AS ord FROM syncline_old o${where}`;
  const clearTombstones = `, t AS (DELETE FROM ${q(meta)}.sync_tombstones t USING c WHERE c.op = 'U' AND t.scope = c.s AND t.tbl = ${name} AND t.key = c.k)`;
  const keepTombstones = `, d AS (
      INSERT INTO ${q(meta)}.sync_tombstones (scope, tbl, key, version, source, hlc)
      SELECT c.s, ${name}, c.k, c.v, '${BACKEND_SOURCE}', c.h FROM c WHERE c.op = 'D'
      ON CONFLICT (scope, tbl, key) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source, hlc = EXCLUDED.hlc)`;
  const moved = ` WHERE NOT EXISTS (SELECT 1 FROM syncline_new n WHERE n.${scope} = o.${scope} AND n.${q(M.key)} = o.${q(M.key)})`;
  return `
CREATE OR REPLACE FUNCTION ${fn('row')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE v_seq text;
BEGIN
  IF TG_OP = 'DELETE' THEN
    ${skipWhenApplying('OLD')}
    IF coalesce(${seqOf(`OLD.${scope}`)}, '') = '' THEN PERFORM ${open}(OLD.${scope}); END IF;
    RETURN OLD;
  END IF;
  ${skipWhenApplying('NEW')}
  -- A NULL scope is left to the column's NOT NULL constraint, which refuses the row.
  IF NEW.${scope} IS NULL THEN RETURN NEW; END IF;
  IF TG_OP = 'UPDATE' AND OLD.${scope} IS DISTINCT FROM NEW.${scope} AND coalesce(${seqOf(`OLD.${scope}`)}, '') = '' THEN PERFORM ${open}(OLD.${scope}); END IF;
  v_seq := ${seqOf(`NEW.${scope}`)};
  IF coalesce(v_seq, '') = '' THEN v_seq := ${open}(NEW.${scope})::text; END IF;
  NEW.${q(M.key)} := ${keyTextSql(table, 'NEW')};
  NEW.${q(M.version)} := v_seq::bigint;
  NEW.${q(M.source)} := '${BACKEND_SOURCE}';
  NEW.${q(M.hlc)} := ${hlcSql};
  RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION ${fn('stmt')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  ${skipWhenApplying('NULL')}
  IF TG_OP = 'INSERT' THEN${bundleRows(upserts('n', 1), clearTombstones)}
  ELSIF TG_OP = 'UPDATE' THEN${bundleRows(`${deletes(moved)} UNION ALL ${upserts('n', 1)}`, `${clearTombstones}${keepTombstones}`)}
  ELSE${bundleRows(deletes(''), keepTombstones)}
  END IF;
  RETURN NULL;
END
$fn$;

CREATE OR REPLACE FUNCTION ${fn('truncate')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  ${skipWhenApplying('NULL')}
  RAISE EXCEPTION 'TRUNCATE of the shared table % is not captured, so devices would keep the rows; DELETE them instead', TG_TABLE_NAME
    USING ERRCODE = 'feature_not_supported';
END
$fn$;

CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}row BEFORE INSERT OR UPDATE OR DELETE ON ${ref} FOR EACH ROW EXECUTE FUNCTION ${fn('row')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}insert AFTER INSERT ON ${ref} REFERENCING NEW TABLE AS syncline_new FOR EACH STATEMENT EXECUTE FUNCTION ${fn('stmt')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}update AFTER UPDATE ON ${ref} REFERENCING OLD TABLE AS syncline_old NEW TABLE AS syncline_new FOR EACH STATEMENT EXECUTE FUNCTION ${fn('stmt')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}delete AFTER DELETE ON ${ref} REFERENCING OLD TABLE AS syncline_old FOR EACH STATEMENT EXECUTE FUNCTION ${fn('stmt')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}truncate BEFORE TRUNCATE ON ${ref} FOR EACH STATEMENT EXECUTE FUNCTION ${fn('truncate')}();
`;
}

/** Drops every capture trigger and function Syncline installed on `target` (the rows stay). */
export function uncaptureSql(target: { schema: string; name: string }, meta: string): string {
  const ref = `${q(target.schema)}.${q(target.name)}`;
  const triggers = ['row', 'insert', 'update', 'delete', 'truncate'].map((t) => `DROP TRIGGER IF EXISTS ${CAPTURE_PREFIX}${t} ON ${ref};`);
  const functions = (['row', 'stmt', 'truncate'] as const).map((p) => `DROP FUNCTION IF EXISTS ${q(meta)}.${q(captureFunctionName(target.schema, target.name, p))}();`);
  return [...triggers, ...functions].join('\n');
}
