import { SynclineError } from '../protocol/errors.js';
import { isPgType, PG_TYPES, type PgType } from '../cloud/type-mapping.js';

/** A column action as the approve route takes it. */
export type CliColumnAction = { name: string; action: 'mirror' | 'ignore' | 'defer' } | { name: string; action: 'mirror_as'; target?: string; pg_type?: PgType };

export interface ApproveFlags {
  mirror?: string;
  mirrorAs?: string;
  ignore?: string;
  defer?: string;
  columnsJson?: string;
  allMirror?: boolean;
}

const list = (text: string | undefined) => (text ? text.split(',').map((s) => s.trim()).filter(Boolean) : []);
const fail = (message: string, context: Record<string, unknown> = {}) => new SynclineError('invalid_config', message, { field: 'mirror-as', ...context });

const TYPES = PG_TYPES.join(', ');

/**
 * `column=target`, `column=target:type` or `column=:type`, parsed strictly: a
 * mirror column name never holds a ":", so what follows one must be a mirror type
 * (PG_TYPES); anything else is refused, naming the types.
 */
export function parseMirrorAs(item: string): CliColumnAction {
  const eq = item.indexOf('=');
  if (eq <= 0 || eq === item.length - 1) throw fail(`--mirror-as takes column=target, column=target:type or column=:type, got "${item}"`);
  const name = item.slice(0, eq).trim();
  const value = item.slice(eq + 1).trim();
  const parts = value.split(':');
  if (parts.length > 2) throw fail(`--mirror-as ${item}: a mirror column name cannot contain ":"; write column=target:type`);
  const target = parts[0]!.trim();
  if (parts.length === 1) return { name, action: 'mirror_as', target };
  const type = parts[1]!.trim().toLowerCase().replace(/\s+/g, ' ');
  if (!isPgType(type)) throw fail(`--mirror-as ${item}: "${parts[1]!.trim()}" is not a mirror type; use one of ${TYPES}`, { column: name, type: parts[1]!.trim() });
  return { name, action: 'mirror_as', ...(target ? { target } : {}), pg_type: type };
}

/**
 * Refuses a --mirror-as type the column cannot take, naming its safe casts
 * (`safe` maps each incoming column to the types the review allows for it).
 */
export function checkSafeTypes(actions: readonly CliColumnAction[], safe: ReadonlyMap<string, readonly string[]>): void {
  for (const action of actions) {
    if (action.action !== 'mirror_as' || action.pg_type === undefined) continue;
    const allowed = safe.get(action.name);
    if (allowed === undefined) throw fail(`--mirror-as names "${action.name}", which is not a column of this review; its columns are ${[...safe.keys()].join(', ')}`, { column: action.name });
    if (!allowed.includes(action.pg_type)) throw fail(`--mirror-as ${action.name}=${action.target ?? ''}:${action.pg_type}: ${action.pg_type} is not a safe cast for "${action.name}"; use ${allowed.join(' or ')}`, { column: action.name });
  }
}

/**
 * The approve body's column actions from the flags. The API wants one action per
 * incoming column; `--all-mirror` is the shortcut that names every column the
 * other flags leave out as `mirror` (`incoming` are the review's columns).
 * `--columns-json` entries win for the names they list (names with commas or "=").
 */
export function columnActions(flags: ApproveFlags, incoming: readonly string[]): CliColumnAction[] {
  const actions = new Map<string, CliColumnAction>();
  const set = (entry: CliColumnAction) => {
    if (actions.has(entry.name)) throw fail(`column ${entry.name} is named twice`);
    actions.set(entry.name, entry);
  };
  for (const name of list(flags.mirror)) set({ name, action: 'mirror' });
  for (const item of list(flags.mirrorAs)) set(parseMirrorAs(item));
  for (const name of list(flags.ignore)) set({ name, action: 'ignore' });
  for (const name of list(flags.defer)) set({ name, action: 'defer' });
  if (flags.columnsJson) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(flags.columnsJson);
    } catch {
      throw fail('--columns-json is not JSON');
    }
    if (!Array.isArray(parsed)) throw fail('--columns-json is a JSON array of column actions');
    for (const entry of parsed as CliColumnAction[]) actions.set(String(entry.name), entry);
  }
  if (flags.allMirror) for (const name of incoming) if (!actions.has(name)) actions.set(name, { name, action: 'mirror' });
  return [...actions.values()];
}
