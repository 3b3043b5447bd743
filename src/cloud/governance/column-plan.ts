import { SynclineError } from '../../protocol/errors.js';
import type { ColumnInfo, TableKey } from '../../protocol/schema.js';
import { defaultMirrorColumn, PG_SYSTEM_COLUMNS, validateSourceName } from '../identifiers.js';
import { newMirrorTypes, type Binding } from '../ingest/mirror-schema.js';
import { tooWideReason } from './row-width.js';
import { pgTypeFor, type PgType } from '../type-mapping.js';
import { isSafeCast, safeTypesFor } from './safe-casts.js';

/**
 * What an operator decides for one incoming column:
 * - `mirror`: into the mirror column of its name (or the one it is bound to), default type;
 * - `mirror_as`: into another mirror column and/or as another type, which must be a
 *   safe cast for the column's affinity (safe-casts.ts);
 * - `ignore`: its values are never stored;
 * - `defer`: decided later; the lineage stays paused (rows staged) until then.
 */
export type ColumnAction =
  | { name: string; action: 'mirror' }
  | { name: string; action: 'mirror_as'; target?: string; pg_type?: PgType }
  | { name: string; action: 'ignore' }
  | { name: string; action: 'defer' };

/** The table the decision applies to, and what the lineage decided before. */
export interface MirrorState {
  /** The lineage's bindings: the ones to change when altering, defaults for `mirror` when moving to another table. */
  bindings: ReadonlyMap<string, Binding>;
  ignored: ReadonlySet<string>;
  /** Columns physically in the target table, with their types; empty for a table still to create. */
  physical: ReadonlyMap<string, string>;
  /** A coalesced mirror: its columns may be written by other devices' lineages too. */
  shared: boolean;
  /** Joining an existing coalesced mirror: the mirror columns that hold its key, in key order. */
  keyTargets?: readonly string[];
}

/** `alter`: change the lineage's bindings on its mirror. `fresh`: bind the lineage anew (new table, or a coalesced one it joins). */
export type PlanMode = 'alter' | 'fresh';

export interface ColumnPlan {
  /** Every column this decision mirrors, in schema order (what a new table is created with). */
  bindings: Binding[];
  /** Bindings to insert or retarget. */
  upserts: Binding[];
  /** Columns to add to an existing table. */
  addColumns: Binding[];
  /** Columns of the schema that end up ignored. */
  ignored: string[];
  /** Previously bound columns now ignored (their mirror columns stay, no longer written). */
  unbind: string[];
  /** Previously ignored columns now mirrored. */
  unignore: string[];
  /** Columns left for a later decision. */
  deferred: string[];
}

const MAX_LISTED = 10;
const invalid = (message: string, field: string, context: Record<string, unknown> = {}) => new SynclineError('invalid_request', message, { field, ...context });
const quoted = (list: readonly string[]) => list.slice(0, MAX_LISTED).map((n) => JSON.stringify(n)).join(', ') + (list.length > MAX_LISTED ? `, and ${list.length - MAX_LISTED} more` : '');

function checkTarget(name: string, field: string): void {
  // "name:type" is how the CLI writes a target with a type; a ":" in a name is always that mistake.
  if (name.includes(':')) throw invalid(`mirror column ${JSON.stringify(name.slice(0, 80))} contains ":"; give the type as pg_type`, field);
  if (PG_SYSTEM_COLUMNS.has(name)) throw invalid(`mirror column ${JSON.stringify(name)} is a PostgreSQL system column name; choose another, such as ${JSON.stringify(`${name}_`)}`, field);
  try {
    validateSourceName(name, 'column');
  } catch (error) {
    throw invalid(`mirror column ${error instanceof SynclineError ? error.message.replace(/^column name /, '') : 'is not usable'}`, field);
  }
}

/** Validates the actions against the schema: each names one of its columns once, and every column has one. */
function indexActions(schema: { columns: readonly ColumnInfo[]; key: TableKey }, actions: readonly ColumnAction[]): Map<string, ColumnAction> {
  const byName = new Map(schema.columns.map((c) => [c.name, c]));
  const keyColumns = new Set(schema.key.kind === 'primary_key' ? schema.key.columns : []);
  const index = new Map<string, ColumnAction>();
  actions.forEach((a, i) => {
    const column = byName.get(a.name);
    if (!column) throw invalid(`column ${JSON.stringify(a.name.slice(0, 80))} is not in the reviewed schema`, `columns.${i}.name`);
    if (index.has(a.name)) throw invalid(`column ${JSON.stringify(a.name)} is listed twice`, `columns.${i}.name`);
    if ((a.action === 'ignore' || a.action === 'defer') && keyColumns.has(a.name)) throw invalid(`key column ${JSON.stringify(a.name)} cannot be ${a.action === 'ignore' ? 'ignored' : 'deferred'}; mirror it`, `columns.${i}.action`);
    if (a.action === 'mirror_as') {
      if (a.target === undefined && a.pg_type === undefined) throw invalid(`mirror_as for ${JSON.stringify(a.name)} needs a target, a pg_type or both`, `columns.${i}`);
      if (a.target !== undefined) checkTarget(a.target, `columns.${i}.target`);
      if (a.pg_type !== undefined && !isSafeCast(column, a.pg_type)) {
        throw invalid(`${a.pg_type} is not a safe cast for ${JSON.stringify(a.name)} (${column.affinity}); use ${safeTypesFor(column).join(', ')}`, `columns.${i}.pg_type`);
      }
    }
    index.set(a.name, a);
  });
  const missing = schema.columns.filter((c) => !index.has(c.name)).map((c) => c.name);
  if (missing.length > 0) {
    throw invalid(`every incoming column needs an action (mirror, mirror_as, ignore or defer); missing ${quoted(missing)}`, 'columns', { missing: missing.slice(0, 100) });
  }
  return index;
}

/** The mirror column and type an action binds a column to. */
function bindingFor(column: ColumnInfo, action: Extract<ColumnAction, { action: 'mirror' | 'mirror_as' }>, bound: Binding | undefined, mode: PlanMode, names: ReadonlySet<string>): Binding {
  const target = (action.action === 'mirror_as' ? action.target : undefined) ?? bound?.target_column ?? defaultMirrorColumn(column.name, names);
  const keepsBound = bound !== undefined && bound.target_column === target;
  let type: PgType;
  if (action.action === 'mirror_as' && action.pg_type !== undefined) type = action.pg_type;
  else if (keepsBound && isSafeCast(column, bound.pg_type)) type = bound.pg_type;
  else if (keepsBound && mode === 'alter') {
    throw invalid(
      `${JSON.stringify(column.name)} is now ${column.affinity} but its mirror column ${JSON.stringify(bound.target_column)} is ${bound.pg_type}; use mirror_as with another target and a type of ${safeTypesFor(column).join(', ')}`,
      'columns',
    );
  } else type = pgTypeFor(column);
  return { source_column: column.name, target_column: target, pg_type: type };
}

/**
 * Turns the operator's actions into binding changes for `schema`. Pure: checks
 * everything (unknown, repeated or missing columns, ignored or deferred keys,
 * unusable names, unsafe casts, clashing or moved key columns) before the caller
 * writes anything.
 */
export function planColumns(schema: { columns: readonly ColumnInfo[]; key: TableKey }, state: MirrorState, actions: readonly ColumnAction[], mode: PlanMode): ColumnPlan {
  const index = indexActions(schema, actions);
  const keyColumns = schema.key.kind === 'primary_key' ? schema.key.columns : [];
  const plan: ColumnPlan = { bindings: [], upserts: [], addColumns: [], ignored: [], unbind: [], unignore: [], deferred: [] };
  const names = new Set(schema.columns.map((c) => c.name));
  for (const column of schema.columns) {
    const action = index.get(column.name)!;
    const bound = state.bindings.get(column.name);
    if (action.action === 'defer') {
      plan.deferred.push(column.name);
      continue;
    }
    if (action.action === 'ignore') {
      plan.ignored.push(column.name);
      if (bound && mode === 'alter') plan.unbind.push(column.name);
      continue;
    }
    const binding = bindingFor(column, action, bound, mode, names);
    const keyIndex = keyColumns.indexOf(column.name);
    if (keyIndex >= 0 && mode === 'alter' && bound && (bound.target_column !== binding.target_column || bound.pg_type !== binding.pg_type)) {
      throw invalid(`key column ${JSON.stringify(column.name)} cannot move to another mirror column or type`, 'columns');
    }
    if (keyIndex >= 0 && mode === 'fresh' && state.keyTargets && state.keyTargets[keyIndex] !== binding.target_column) {
      throw invalid(`key column ${JSON.stringify(column.name)} must go to ${JSON.stringify(state.keyTargets[keyIndex])}, the key column of the coalesced mirror`, 'columns');
    }
    plan.bindings.push(binding);
    if (state.ignored.has(column.name) && mode === 'alter') plan.unignore.push(column.name);
    if (mode === 'fresh' || !bound || bound.target_column !== binding.target_column || bound.pg_type !== binding.pg_type) plan.upserts.push(binding);
  }
  checkTargets(plan, state, mode);
  // A table to create holds the plan's bindings; an existing one its columns plus those added.
  const types = state.physical.size === 0 ? newMirrorTypes(schema.key, plan.bindings) : [...state.physical.values(), ...plan.addColumns.map((b) => b.pg_type)];
  const wide = tooWideReason(types);
  if (wide) throw invalid(wide, 'columns', { reason: 'table_too_wide' });
  return plan;
}

function checkTargets(plan: ColumnPlan, state: MirrorState, mode: PlanMode): void {
  const owners = new Map<string, string>();
  const claim = (b: Binding) => {
    const other = owners.get(b.target_column);
    if (other !== undefined && other !== b.source_column) {
      throw invalid(`columns ${JSON.stringify(other)} and ${JSON.stringify(b.source_column)} would share mirror column ${JSON.stringify(b.target_column)}`, 'columns');
    }
    owners.set(b.target_column, b.source_column);
  };
  plan.bindings.forEach(claim);
  if (mode === 'alter') {
    const planned = new Set(plan.bindings.map((b) => b.source_column));
    const unbound = new Set(plan.unbind);
    // Bindings this decision leaves alone (columns the schema no longer has, deferred ones) keep their mirror columns.
    for (const b of state.bindings.values()) if (!planned.has(b.source_column) && !unbound.has(b.source_column)) claim(b);
  }
  for (const b of plan.upserts) {
    const existing = state.physical.get(b.target_column);
    if (existing === undefined) {
      plan.addColumns.push(b);
      continue;
    }
    if (existing !== b.pg_type) throw invalid(`mirror column ${JSON.stringify(b.target_column)} already exists as ${existing}, not ${b.pg_type}; choose another target`, 'columns');
    // In a lineage's own mirror a column kept from an earlier decision is reused only by the source it
    // is named after, so two source columns never share one column's history; a coalesced mirror is
    // shared by design.
    if (!state.shared && b.target_column !== b.source_column) {
      throw invalid(`mirror column ${JSON.stringify(b.target_column)} already exists; choose another name`, 'columns');
    }
  }
}

/**
 * The actions Syncline takes on its own (the auto policy, additive changes the
 * policy allows, replay of older rows): every column mirrored as it is, except
 * those an operator chose to ignore, which stay ignored.
 */
export function mirrorUnlessIgnored(columns: readonly Pick<ColumnInfo, 'name'>[], ignored: ReadonlySet<string>): ColumnAction[] {
  return columns.map((c) => (ignored.has(c.name) ? { name: c.name, action: 'ignore' } : { name: c.name, action: 'mirror' }));
}
