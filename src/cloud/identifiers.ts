import { createHash } from 'node:crypto';
import { MAX_IDENTIFIER_BYTES, RESERVED_PREFIX } from '../protocol/constants.js';
import { SynclineError, type ErrorContext } from '../protocol/errors.js';

/**
 * Every table or column name that reaches SQL from a device passes through here:
 * validated, then always double-quoted. A name is never interpolated any other way.
 */

export const MIRROR_TABLE_PREFIX = 'edge_mirror_';

const byteLength = (name: string): number => Buffer.byteLength(name, 'utf8');
/**
 * C0 and C1 controls, DEL, and the bidirectional overrides and isolates: a name
 * holding one can rewrite an operator's terminal or make two names look alike.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

/** True when a name holds a character that would act on a terminal instead of printing. */
export function hasControlCharacter(name: string): boolean {
  return CONTROL.test(name);
}

/** A name in double quotes with every control character escaped as \uXXXX, safe to print. */
export function quotedForHumans(name: string): string {
  return JSON.stringify(name).replace(new RegExp(CONTROL.source, 'g'), (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** True when a string has no lone surrogate, so it survives UTF-8 encoding unchanged. */
export function isWellFormed(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

/**
 * Refuses names PostgreSQL would truncate or mangle, and names that are not
 * well-formed UTF-16 (a lone surrogate would be stored as U+FFFD, so the mirror
 * column would no longer match the device's name).
 */
export function validateSourceName(name: string, what: 'table' | 'column', context: ErrorContext = {}): void {
  // Quoted only on failure: every batch checks its table and column names, and quoting cost more than the checks.
  const fail = (reason: string) => {
    const shown = quotedForHumans(name.slice(0, 80));
    return new SynclineError('hostile_identifier', `${what} name ${shown} ${reason}`, { ...context, [what === 'table' ? 'table' : 'column']: hasControlCharacter(name) ? shown : name.slice(0, 80) });
  };
  if (name.length === 0) throw fail('is empty');
  if (name.includes('\u0000')) throw fail('contains NUL');
  if (hasControlCharacter(name)) throw fail('contains a control character');
  if (!isWellFormed(name)) throw fail('is not well-formed unicode');
  if (byteLength(name) > MAX_IDENTIFIER_BYTES) throw fail(`is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  if (what === 'column' && name.toLowerCase().startsWith(RESERVED_PREFIX)) throw fail(`uses the reserved prefix ${RESERVED_PREFIX}`);
}

/**
 * Column names every PostgreSQL table already has (system columns; `oid` was one
 * before PostgreSQL 12). A source column of that name is mirrored as the name
 * followed by underscores: `xmin` as `xmin_` (`xmin__` if the table also has `xmin_`).
 */
export const PG_SYSTEM_COLUMNS: ReadonlySet<string> = new Set(['tableoid', 'xmin', 'cmin', 'xmax', 'cmax', 'ctid', 'oid']);

/** The mirror column a source column goes to unless an operator says otherwise. */
export function defaultMirrorColumn(name: string, sourceColumns: ReadonlySet<string>): string {
  if (!PG_SYSTEM_COLUMNS.has(name)) return name;
  let target = `${name}_`;
  while (sourceColumns.has(target)) target += '_';
  return target;
}

/** Double-quotes an identifier; embedded quotes are doubled. Callers validate first. */
export function quoteIdent(name: string): string {
  if (name.length === 0 || name.includes('\u0000')) {
    throw new SynclineError('hostile_identifier', 'an identifier cannot be empty or contain NUL');
  }
  return `"${name.replaceAll('"', '""')}"`;
}

function shortHash(text: string, hexChars: number): string {
  return createHash('sha256').update(text, 'utf8').digest('hex').slice(0, hexChars);
}

/** Lowercase ASCII letters, digits and underscores only: one byte per character. */
function sanitize(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}

/** First 8 hex digits of the device id, the device's visible tag in mirror names. */
export function deviceTag(deviceId: string): string {
  const hex = deviceId.replaceAll('-', '').toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new SynclineError('internal', 'device id is not a uuid', { device_id: deviceId });
  return hex.slice(0, 8);
}

/**
 * The mirror table for a device's source table: `edge_mirror_{device8}_{table}`.
 *
 * The table part is lowercased and reduced to [a-z0-9_]. When that changed the
 * name or it had to be truncated, a hash of the exact source name is appended, so
 * `Foo`, `foo` and `f-o-o` get three different mirrors. The result is always a
 * plain lowercase identifier of at most 63 bytes starting with `edge_mirror_`,
 * which none of Syncline's own tables do.
 *
 * This is deterministic per (device, table) but two devices can share a tag, and
 * a device may even name a table like another's hashed form; the provisioner
 * therefore checks the name is free and falls back to `mirrorNameCandidates`.
 */
export function mirrorTableName(deviceId: string, sourceTable: string): string {
  const head = `${MIRROR_TABLE_PREFIX}${deviceTag(deviceId)}_`;
  const room = MAX_IDENTIFIER_BYTES - head.length;
  const safe = sanitize(sourceTable);
  if (safe === sourceTable && safe.length <= room) return head + safe;
  const hash = shortHash(sourceTable, 8);
  return `${head}${safe.slice(0, room - hash.length - 1)}_${hash}`;
}

/**
 * Names to try, in order, for a new mirror: the plain name; one that also hashes
 * the full device id (distinct when two devices share a tag); and one made of the
 * lineage id, which is unique by construction, as the last resort.
 */
export function mirrorNameCandidates(deviceId: string, sourceTable: string, lineageId: string): string[] {
  const plain = mirrorTableName(deviceId, sourceTable);
  const head = `${MIRROR_TABLE_PREFIX}${deviceTag(deviceId)}_`;
  const hash = shortHash(`${deviceId}\u0000${sourceTable}`, 16);
  const safe = sanitize(sourceTable);
  const qualified = `${head}${safe.slice(0, MAX_IDENTIFIER_BYTES - head.length - hash.length - 1)}_${hash}`;
  const unique = `${MIRROR_TABLE_PREFIX}l${lineageId.replaceAll('-', '').toLowerCase()}`;
  return [plain, qualified, unique];
}

/**
 * Names to try for a coalesced mirror, shared by a project's devices:
 * `edge_mirror_{table}` (reduced and hashed like mirrorTableName when needed), then
 * one qualified by a hash of project, table and key (another project, or the same
 * table under another key, may hold the plain name). The provisioner checks each
 * is free, as for device mirrors.
 */
export function coalescedMirrorCandidates(projectId: string, sourceTable: string, keyColumns: readonly string[]): string[] {
  const room = MAX_IDENTIFIER_BYTES - MIRROR_TABLE_PREFIX.length;
  const safe = sanitize(sourceTable);
  const plain = safe === sourceTable && safe.length <= room ? MIRROR_TABLE_PREFIX + safe : `${MIRROR_TABLE_PREFIX}${safe.slice(0, room - 9)}_${shortHash(sourceTable, 8)}`;
  const hash = shortHash(`${projectId}\u0000${sourceTable}\u0000${JSON.stringify(keyColumns)}`, 16);
  const qualified = `${MIRROR_TABLE_PREFIX}${safe.slice(0, room - hash.length - 1)}_${hash}`;
  return [plain, qualified];
}
