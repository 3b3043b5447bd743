import { SynclineError } from '../protocol/errors.js';
import { PG_TYPES, type PgType } from '../cloud/type-mapping.js';

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
const fail = (message: string) => new SynclineError('invalid_config', message);

/**
 * `column=target`, `column=target:type` or `column=:type`. The type is what follows
 * the last colon when that is a PostgreSQL type the mirrors use; otherwise the
 * whole value is the target name.
 */
export function parseMirrorAs(item: string): CliColumnAction {
  const eq = item.indexOf('=');
  if (eq <= 0 || eq === item.length - 1) throw fail(`--mirror-as takes column=target, column=target:type or column=:type, got "${item}"`);
  const name = item.slice(0, eq);
  const value = item.slice(eq + 1);
  const colon = value.lastIndexOf(':');
  const suffix = colon >= 0 ? value.slice(colon + 1).trim() : '';
  if (colon >= 0 && (PG_TYPES as readonly string[]).includes(suffix)) {
    const target = value.slice(0, colon);
    return { name, action: 'mirror_as', ...(target ? { target } : {}), pg_type: suffix as PgType };
  }
  return { name, action: 'mirror_as', target: value };
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
