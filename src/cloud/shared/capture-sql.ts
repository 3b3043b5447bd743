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
 * Per table:
 * - BEFORE ROW fills Syncline's columns (key text, version = the transaction's
 *   bundle_seq for the row's scope, source `backend`, an HLC from the clock), so a
 *   plain INSERT naming only the table's own columns and the scope works. A row
 *   trigger's cost is paid per row and grows with each expression it evaluates,
 *   so the INSERT one is a single test and four assignments once the scope's
 *   bundle is open (its seq and HLC are kept in transaction-local settings);
 *   UPDATE and DELETE have their own, which also handle rows changing scope.
 * - AFTER STATEMENT (one per operation, with transition tables) appends the
 *   statement's changes to the bundle as one chunk per scope (keys and rows as
 *   two `json` arrays, migration 18) and keeps tombstones.
 * Measured by PostgreSQL's backend CPU (bench group shared-backend and its notes
 * in the README): the row trigger that only assigns the four columns is the
 * floor of this design; a bundle row per change cost ~0.8 of the plain INSERT
 * on top, a chunk per statement ~0.3 (mostly building the rows' JSON).
 * All do nothing while `syncline.applying` is on: Syncline's own writes (device
 * pushes, admin bundles) set it for their transaction, so nothing is captured twice.
 * TRUNCATE is refused: no row trigger would see it and devices would keep the rows.
 */

export const APPLYING_SETTING = 'syncline.applying';
export const CAPTURE_PREFIX = 'syncline_capture_';
export const BACKEND_SOURCE = 'backend';

type CapturePart = 'row' | 'change' | 'stmt' | 'truncate';

/** Function names are per table; a digest keeps them within 63 bytes whatever the table is called. */
export function captureFunctionName(schema: string, table: string, part: CapturePart): string {
  const digest = createHash('sha256').update(`${schema}.${table}`).digest('hex').slice(0, 16);
  return `${CAPTURE_PREFIX}${part}_${digest}`;
}

const skipWhenApplying = (returns: string) => `IF current_setting('${APPLYING_SETTING}', true) = 'on' THEN RETURN ${returns}; END IF;`;
const seqOf = (scope: string) => `current_setting('syncline.b' || md5(${scope}), true)`;
// The scope, bundle_seq and HLC of the bundle the transaction wrote last (transaction-local).
const LAST_SCOPE = 'syncline.last_scope';
const LAST_SEQ = 'syncline.last_seq';
const LAST_HLC = 'syncline.last_hlc';
const hlcSql = `lpad((extract(epoch from clock_timestamp()) * 1000)::bigint::text, 15, '0') || '-000000-${BACKEND_SOURCE}'`;

/**
 * The SQL installing capture on one table (idempotent: functions and triggers are
 * replaced). `meta` is the schema of Syncline's own tables, `target` the table.
 */
export function captureSql(table: SharedTable, target: { schema: string; name: string }, meta: string): string {
  const ref = `${q(target.schema)}.${q(target.name)}`;
  const fn = (part: CapturePart) => `${q(meta)}.${q(captureFunctionName(target.schema, target.name, part))}`;
  const open = `${q(meta)}.syncline_open_bundle`;
  const scope = q(scopeColumn(table));
  const name = `'${table.name.replaceAll("'", "''")}'`;
  const rowJson = (alias: string) => `json_build_array(${table.columns.map((c) => wireJsonSql(`${alias}.${q(c.name)}`, c.type)).join(', ')})`;
  const bundles = `${q(meta)}.sync_bundles`;
  const tombstones = `${q(meta)}.sync_tombstones`;
  // One group of a statement's changes (one scope, bundle, op and HLC) becomes one chunk of its bundle (migration 18).
  const groups = (alias: string, source: string, op: 'U' | 'D', seq: string, hlc: string, where = '') =>
    `SELECT ${alias}.${scope} AS s, ${seq} AS v, '${op}'::"char" AS op, ${hlc} AS h, count(*)::int AS cnt,
            ('[' || string_agg(${alias}.${q(M.key)}, ',') || ']')::json AS keys, ${op === 'U' ? `json_agg(${rowJson(alias)})` : 'NULL::json'} AS rows
       FROM ${source} ${alias}${where} GROUP BY 1, 2, 4`;
  const appendChunk = `
      UPDATE ${bundles} b SET row_count = b.row_count + g.cnt WHERE b.scope = g.s AND b.bundle_seq = g.v RETURNING b.row_count - g.cnt INTO v_base;
      INSERT INTO ${q(meta)}.sync_bundle_chunks (scope, bundle_seq, ordinal, tbl, op, hlc, keys, rows) VALUES (g.s, g.v, v_base, ${name}, g.op, g.h, g.keys, g.rows);`;
  // An upsert revives a deleted key: its tombstone goes (looked for only when the scope has any for this table).
  const reviveKeys = `
      IF EXISTS (SELECT 1 FROM ${tombstones} t WHERE t.scope = g.s AND t.tbl = ${name}) THEN
        DELETE FROM ${tombstones} t USING syncline_new n WHERE n.${scope} = g.s AND t.scope = g.s AND t.tbl = ${name} AND t.key = n.${q(M.key)};
      END IF;`;
  const keepTombstones = (where: string) => `
    INSERT INTO ${tombstones} (scope, tbl, key, version, source, hlc)
      SELECT o.${scope}, ${name}, o.${q(M.key)}, (${seqOf(`o.${scope}`)})::bigint, '${BACKEND_SOURCE}', v_hlc FROM syncline_old o${where}
      ON CONFLICT (scope, tbl, key) DO UPDATE SET version = EXCLUDED.version, source = EXCLUDED.source, hlc = EXCLUDED.hlc;`;
  const deleted = (where: string) => groups('o', 'syncline_old', 'D', `(${seqOf(`o.${scope}`)})::bigint`, 'v_hlc', where);
  const upserted = groups('n', 'syncline_new', 'U', `n.${q(M.version)}`, `n.${q(M.hlc)}`);
  const moved = ` WHERE NOT EXISTS (SELECT 1 FROM syncline_new n WHERE n.${scope} = o.${scope} AND n.${q(M.key)} = o.${q(M.key)})`;
  // Opens (or joins) the transaction's bundle of NEW's scope and keeps its seq and HLC for the next rows.
  const openLastBundle = `PERFORM set_config('${LAST_SEQ}', ${open}(NEW.${scope})::text, true), set_config('${LAST_HLC}', ${hlcSql}, true), set_config('${LAST_SCOPE}', 's:' || NEW.${scope}, true);`;
  const fillColumns = [
    `NEW.${q(M.key)} := ${keyTextSql(table, 'NEW')};`,
    `NEW.${q(M.version)} := current_setting('${LAST_SEQ}')::bigint;`,
    `NEW.${q(M.source)} := '${BACKEND_SOURCE}';`,
    `NEW.${q(M.hlc)} := current_setting('${LAST_HLC}');`,
  ].join('\n  ');
  return `
CREATE OR REPLACE FUNCTION ${fn('row')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  -- Every row after the first of a scope in a transaction takes the fast way: one
  -- comparison and four assignments (each expression of a row trigger is paid per row).
  -- A NULL scope never takes it (the comparison is NULL), nor does Syncline's own
  -- write: its transactions turn applying on before any write, so no scope was kept.
  IF current_setting('${LAST_SCOPE}', true) = 's:' || NEW.${scope} THEN
    NULL;
  ELSE
    ${skipWhenApplying('NEW')}
    -- A NULL scope is left to the column's NOT NULL constraint, which refuses the row.
    IF NEW.${scope} IS NULL THEN RETURN NEW; END IF;
    ${openLastBundle}
  END IF;
  ${fillColumns}
  RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION ${fn('change')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    ${skipWhenApplying('OLD')}
    IF coalesce(${seqOf(`OLD.${scope}`)}, '') = '' THEN PERFORM ${open}(OLD.${scope}); END IF;
    RETURN OLD;
  END IF;
  ${skipWhenApplying('NEW')}
  IF NEW.${scope} IS NULL THEN RETURN NEW; END IF;
  -- A row moving to another scope is deleted from the old one, in that scope's bundle.
  IF OLD.${scope} IS DISTINCT FROM NEW.${scope} AND coalesce(${seqOf(`OLD.${scope}`)}, '') = '' THEN PERFORM ${open}(OLD.${scope}); END IF;
  IF current_setting('${LAST_SCOPE}', true) IS DISTINCT FROM 's:' || NEW.${scope} THEN
    ${openLastBundle}
  END IF;
  ${fillColumns}
  RETURN NEW;
END
$fn$;

CREATE OR REPLACE FUNCTION ${fn('stmt')}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE g record; v_base bigint; v_hlc text := ${hlcSql};
BEGIN
  ${skipWhenApplying('NULL')}
  IF TG_OP = 'INSERT' THEN
    -- Every row of one scope in a statement has the same version (the transaction's bundle of that scope).
    FOR g IN ${upserted} LOOP${appendChunk}${reviveKeys}
    END LOOP;
  ELSIF TG_OP = 'UPDATE' THEN
    -- A row moved to another scope is deleted from the old one first.
    FOR g IN ${deleted(moved)} LOOP${appendChunk}
    END LOOP;
    IF FOUND THEN${keepTombstones(moved)}
    END IF;
    FOR g IN ${upserted} LOOP${appendChunk}${reviveKeys}
    END LOOP;
  ELSE
    FOR g IN ${deleted('')} LOOP${appendChunk}
    END LOOP;${keepTombstones('')}
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

CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}row BEFORE INSERT ON ${ref} FOR EACH ROW EXECUTE FUNCTION ${fn('row')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}change BEFORE UPDATE OR DELETE ON ${ref} FOR EACH ROW EXECUTE FUNCTION ${fn('change')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}insert AFTER INSERT ON ${ref} REFERENCING NEW TABLE AS syncline_new FOR EACH STATEMENT EXECUTE FUNCTION ${fn('stmt')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}update AFTER UPDATE ON ${ref} REFERENCING OLD TABLE AS syncline_old NEW TABLE AS syncline_new FOR EACH STATEMENT EXECUTE FUNCTION ${fn('stmt')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}delete AFTER DELETE ON ${ref} REFERENCING OLD TABLE AS syncline_old FOR EACH STATEMENT EXECUTE FUNCTION ${fn('stmt')}();
CREATE OR REPLACE TRIGGER ${CAPTURE_PREFIX}truncate BEFORE TRUNCATE ON ${ref} FOR EACH STATEMENT EXECUTE FUNCTION ${fn('truncate')}();
`;
}
