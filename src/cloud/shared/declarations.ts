import { z } from 'zod';
import { RESERVED_PREFIX } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import { SHARED_KEY_TYPES, SharedDefaults, sharedTableSchema, type Direction, type SharedTable } from '../../protocol/shared-sync.js';
import { validateSourceName } from '../identifiers.js';

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

const sharedConfigFileSchema = z.strictObject({
  auth: authSchema.default({}),
  retention: retentionSchema.default({ bundles: SharedDefaults.retentionBundles, scopes: {} }),
  tables: z.array(z.unknown()).min(1),
});

export interface SharedSyncConfig {
  auth: z.infer<typeof authSchema>;
  retention: z.infer<typeof retentionSchema>;
  /** Tables that sync (direction other than none), parents before children. */
  tables: SharedTable[];
  /** `--provision`: Syncline may add its bookkeeping columns, index and foreign keys to business tables (never otherwise). */
  provision?: boolean;
}

/** Directions a device may push in, and directions it pulls. */
export const pushes = (direction: Direction): boolean => direction === 'up' || direction === 'both';
export const pulls = (direction: Direction): boolean => direction === 'down' || direction === 'both';

/** Parses and validates a config document (the JSON of --shared-config). */
export function parseSharedConfig(document: unknown): SharedSyncConfig {
  const file = sharedConfigFileSchema.safeParse(document);
  if (!file.success) throw new SynclineError('invalid_config', `shared config: ${z.prettifyError(file.error)}`);
  const problems: string[] = [];
  const tables: SharedTable[] = [];
  // Names of declarations the schema refused: their own problem is reported, so references to them are not.
  const refused = new Set<string>();
  file.data.tables.forEach((raw, index) => {
    const parsed = sharedTableSchema.safeParse(raw);
    if (parsed.success) {
      tables.push(parsed.data);
      return;
    }
    const name = typeof raw === 'object' && raw !== null ? (raw as { name?: unknown }).name : undefined;
    if (typeof name === 'string') refused.add(name);
    const label = typeof name === 'string' ? `table ${JSON.stringify(name)} (tables[${index}])` : `tables[${index}]`;
    problems.push(`${label}: ${z.prettifyError(parsed.error).replaceAll('\n', '; ')}`);
  });
  problems.push(...tableProblems(tables, refused));
  if (problems.length > 0) {
    throw new SynclineError('invalid_config', `the shared table declarations cannot be honoured:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  const synced = tables.filter((t) => t.direction !== 'none');
  return { auth: file.data.auth, retention: file.data.retention, tables: parentFirst(synced) };
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
