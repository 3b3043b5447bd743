import { z } from 'zod';
import { RESERVED_PREFIX } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import { SHARED_KEY_TYPES, SharedDefaults, sharedTableSchema, type Direction, type SharedTable } from '../../protocol/shared-sync.js';
import { validateSourceName } from '../identifiers.js';
import type { SnapshotLimits } from './snapshot-limits.js';

/**
 * The shared-table declarations of a server, checked before it starts. Every
 * problem is reported at once, each naming its table, so an operator fixes the
 * file in one pass instead of one restart per mistake.
 */

const authSchema = z.strictObject({
  hs256_secret: z.string().optional(),
  jwks_url: z.string().optional(),
  issuer: z.string().optional(),
  audience: z.string().optional(),
  tenant_claim: z.string().min(1).optional(),
  source_claim: z.string().min(1).optional(),
  max_lifetime_sec: z.number().int().positive().optional(),
  allow_no_exp: z.boolean().optional(),
});

const retentionSchema = z.strictObject({
  bundles: z.number().int().min(1).default(SharedDefaults.retentionBundles),
  scopes: z.record(z.string(), z.number().int().min(1)).default({}),
});

/** HS256 secrets shorter than this are refused (RFC 7518: at least the hash's size). */
export const MIN_HS256_SECRET_BYTES = 32;

export interface SharedSyncConfig {
  auth: z.infer<typeof authSchema>;
  retention: z.infer<typeof retentionSchema>;
  /** Tables that sync (direction other than none), parents before children. */
  tables: SharedTable[];
  /** `--provision`: Syncline may add its bookkeeping columns, index and foreign keys to business tables (never otherwise). */
  provision?: boolean;
  /** Caps on snapshot state (per scope and in all, across every server process); unset ones keep their defaults. */
  snapshots?: Partial<SnapshotLimits>;
}

/** Directions a device may push in, and directions it pulls. */
export const pushes = (direction: Direction): boolean => direction === 'up' || direction === 'both';
export const pulls = (direction: Direction): boolean => direction === 'down' || direction === 'both';

/** zod's issues on one line, each at its path (`direction: Invalid option: ...`); prettifyError draws them over lines with marks. */
function issuesText(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length > 0 ? `${i.path.join('.')}: ` : ''}${i.message}`).join('; ');
}

/** Parses and validates a config document (the JSON of --shared-config). */
/** `requireAuth`: a server's config must say how device JWTs are checked (a test of declarations alone need not). */
export function parseSharedConfig(document: unknown, options: { requireAuth?: boolean } = {}): SharedSyncConfig {
  const problems: string[] = [];
  const issue = (where: string, error: z.ZodError) => problems.push(`${where}: ${issuesText(error)}`);
  if (typeof document !== 'object' || document === null || Array.isArray(document)) throw new SynclineError('invalid_config', 'shared config: the file must hold a JSON object with "tables" (and optionally "auth", "retention")');
  const { auth: rawAuth, retention: rawRetention, tables: rawTables, ...unknown } = document as Record<string, unknown>;
  // Each part is checked on its own, so one mistake never hides another, and all before anything touches the database.
  for (const key of Object.keys(unknown)) problems.push(`unknown key ${JSON.stringify(key)} (the file has "auth", "retention" and "tables")`);
  const auth = authSchema.default({}).safeParse(rawAuth);
  if (!auth.success) issue('auth', auth.error);
  else problems.push(...authProblems(auth.data, options.requireAuth === true));
  const retention = retentionSchema.default({ bundles: SharedDefaults.retentionBundles, scopes: {} }).safeParse(rawRetention);
  if (!retention.success) issue('retention', retention.error);
  const declared = Array.isArray(rawTables) ? rawTables : [];
  if (declared.length === 0) problems.push('"tables" must list at least one table');
  const tables: SharedTable[] = [];
  // Names of declarations the schema refused: their own problems are reported, so references to them are not.
  const refused = new Set<string>();
  declared.forEach((raw, index) => {
    const parsed = sharedTableSchema.safeParse(raw);
    if (parsed.success) {
      tables.push(parsed.data);
      return;
    }
    const name = typeof raw === 'object' && raw !== null ? (raw as { name?: unknown }).name : undefined;
    if (typeof name === 'string') refused.add(name);
    const label = typeof name === 'string' ? `table ${JSON.stringify(name)} (tables[${index}])` : `tables[${index}]`;
    problems.push(`${label}: ${issuesText(parsed.error)}`);
    problems.push(...looseKeyProblems(raw).map((p) => `${label}: ${p}`));
  });
  problems.push(...tableProblems(tables, refused));
  if (problems.length > 0 || !auth.success || !retention.success) {
    throw new SynclineError('invalid_config', `the shared config cannot be honoured (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, { problems });
  }
  const synced = tables.filter((t) => t.direction !== 'none');
  return { auth: auth.data, retention: retention.data, tables: parentFirst(synced) };
}

/** The HS256 secret's length and the need for some way to check tokens, known before the server starts. */
function authProblems(auth: z.infer<typeof authSchema>, required: boolean): string[] {
  const problems: string[] = [];
  if (required && auth.hs256_secret === undefined && auth.jwks_url === undefined) problems.push('auth: set auth.hs256_secret or auth.jwks_url (or SYNCLINE_JWT_SECRET / SYNCLINE_JWKS_URL) so device JWTs can be checked');
  if (auth.hs256_secret !== undefined && Buffer.byteLength(auth.hs256_secret, 'utf8') < MIN_HS256_SECRET_BYTES) {
    problems.push(`auth: the HS256 secret has ${Buffer.byteLength(auth.hs256_secret, 'utf8')} bytes; it needs at least ${MIN_HS256_SECRET_BYTES}`);
  }
  return problems;
}

/** Key and reference columns of a declaration the schema refused for another reason, so those problems show in the same run. */
function looseKeyProblems(raw: unknown): string[] {
  if (typeof raw !== 'object' || raw === null) return [];
  const { columns, key, references } = raw as { columns?: unknown; key?: unknown; references?: unknown };
  if (!Array.isArray(columns)) return [];
  const names = new Set(columns.map((c) => (typeof c === 'object' && c !== null ? (c as { name?: unknown }).name : undefined)).filter((n): n is string => typeof n === 'string'));
  const problems: string[] = [];
  if (Array.isArray(key)) for (const k of key) if (typeof k === 'string' && !names.has(k)) problems.push(`key column ${JSON.stringify(k)} is not a declared column`);
  if (Array.isArray(references)) {
    for (const ref of references) {
      const cols = typeof ref === 'object' && ref !== null ? (ref as { columns?: unknown }).columns : undefined;
      if (Array.isArray(cols)) for (const c of cols) if (typeof c === 'string' && !names.has(c)) problems.push(`reference uses ${JSON.stringify(c)}, which is not a declared column`);
    }
  }
  return problems;
}

function tableProblems(tables: readonly SharedTable[], refused: ReadonlySet<string>): string[] {
  const problems: string[] = [];
  const byName = new Map<string, SharedTable>();
  for (const table of tables) {
    const say = (message: string) => problems.push(`table ${JSON.stringify(table.name)}: ${message}`);
    if (byName.has(table.name)) say('is declared twice');
    byName.set(table.name, table);
    nameProblem(table.name, 'table', say);
    if (table.name.toLowerCase().startsWith('sqlite_')) say('names a SQLite internal table');
    const columns = new Map(table.columns.map((c) => [c.name, c]));
    if (columns.size !== table.columns.length) say('declares a column twice');
    for (const column of table.columns) nameProblem(column.name, 'column', say);
    if (new Set(table.key).size !== table.key.length) say('names a key column twice');
    if (table.scope_column !== undefined && table.schema === undefined) say('scope_column applies to a business table of your own; name its "schema" too');
    if (table.scope_column !== undefined && columns.has(table.scope_column)) say(`scope column ${table.scope_column} is also declared as a synced column; the scope never travels to devices`);
    if (table.schema !== undefined && (table.schema.toLowerCase().startsWith('pg_') || table.schema === 'information_schema')) say(`schema ${table.schema} is a PostgreSQL system schema`);
    for (const name of table.key) {
      const column = columns.get(name);
      if (!column) say(`key column ${JSON.stringify(name)} is not a declared column`);
      else if (!SHARED_KEY_TYPES.includes(column.type)) say(`key column ${JSON.stringify(name)} has type ${column.type}; keys are ${SHARED_KEY_TYPES.join(', ')}`);
    }
  }
  for (const table of tables) {
    const say = (message: string) => problems.push(`table ${JSON.stringify(table.name)}: ${message}`);
    for (const ref of table.references) if (byName.has(ref.table) || !refused.has(ref.table)) referenceProblems(table, ref, byName.get(ref.table), say);
  }
  const scopes = new Set(tables.filter((t) => t.direction !== 'none').map((t) => t.scope));
  if (scopes.size > 1) {
    for (const table of tables.filter((t) => t.direction !== 'none' && t.scope !== 'user')) {
      problems.push(`table ${JSON.stringify(table.name)}: scope ${table.scope} differs from other tables' scope user; one server syncs one kind of scope, so bundles stay in one sequence`);
    }
  }
  return problems;
}

function nameProblem(name: string, what: 'table' | 'column', say: (message: string) => void): void {
  try {
    validateSourceName(name, what);
  } catch (error) {
    say((error as Error).message);
    return;
  }
  if (what === 'table' && name.toLowerCase().startsWith(RESERVED_PREFIX)) say(`uses the reserved prefix ${RESERVED_PREFIX}`);
}

function referenceProblems(table: SharedTable, ref: SharedTable['references'][number], target: SharedTable | undefined, say: (message: string) => void): void {
  const label = `reference ${JSON.stringify(ref.columns)} -> ${JSON.stringify(ref.table)}`;
  if (!target) return say(`${label} names a table that is not declared`);
  if (target.direction === 'none' && table.direction !== 'none') return say(`${label} points at a table that does not sync (direction none)`);
  if (pulls(table.direction) && !pulls(target.direction)) say(`${label}: rows pulled to devices would reference rows the devices never receive (${target.name} is direction ${target.direction})`);
  if (pushes(table.direction) && !pushes(target.direction) && table.name !== target.name) {
    say(`${label}: devices push this table but cannot push ${target.name} (direction ${target.direction}), so a device could not create the parent its rows need`);
  }
  if (target.scope !== table.scope) say(`${label} crosses scope kinds (${table.scope} -> ${target.scope})`);
  if (ref.columns.length !== target.key.length) return say(`${label} has ${ref.columns.length} columns but ${target.name}'s key has ${target.key.length}`);
  ref.columns.forEach((name, i) => {
    const column = table.columns.find((c) => c.name === name);
    const keyColumn = target.columns.find((c) => c.name === target.key[i]);
    if (!column) say(`${label} uses ${JSON.stringify(name)}, which is not a declared column`);
    else if (keyColumn && column.type !== keyColumn.type) say(`${label}: ${name} is ${column.type} but ${target.name}.${keyColumn.name} is ${keyColumn.type}`);
  });
}

/**
 * Parents before children, so upserts can run in this order and deletes in the
 * reverse. References in a cycle (and self-references) keep declaration order:
 * the foreign keys are deferred, so any order commits.
 */
export function parentFirst(tables: readonly SharedTable[]): SharedTable[] {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const placed = new Set<string>();
  const visiting = new Set<string>();
  const order: SharedTable[] = [];
  const visit = (table: SharedTable) => {
    if (placed.has(table.name) || visiting.has(table.name)) return;
    visiting.add(table.name);
    for (const ref of table.references) {
      const parent = byName.get(ref.table);
      if (parent) visit(parent);
    }
    visiting.delete(table.name);
    placed.add(table.name);
    order.push(table);
  };
  tables.forEach(visit);
  return order;
}
