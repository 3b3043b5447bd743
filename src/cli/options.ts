import { parseArgs } from 'node:util';
import { SynclineError } from '../protocol/errors.js';

/**
 * One table of options per command produces the CLI flags, the environment
 * variables and the help text, so the three never drift apart. A flag beats its
 * environment variable, which beats the default.
 */
export interface OptionSpec {
  flag: string;
  env?: string;
  /** `list`: a repeatable flag (its environment variable is comma-separated). */
  kind: 'string' | 'integer' | 'boolean' | 'list';
  default?: string | number | boolean;
  choices?: readonly string[];
  description: string;
  /** Never echoed in help defaults or logs. */
  secret?: boolean;
  required?: boolean;
}

export type OptionTable = Record<string, OptionSpec>;

export type ParsedOptions<T extends OptionTable> = {
  [K in keyof T]: T[K]['kind'] extends 'integer' ? number : T[K]['kind'] extends 'boolean' ? boolean : T[K]['kind'] extends 'list' ? string[] : string;
};

export interface ParsedCommand<T extends OptionTable> {
  options: ParsedOptions<T>;
  positionals: string[];
}

function convert(name: string, spec: OptionSpec, raw: string | boolean | string[]): string | number | boolean | string[] {
  if (spec.kind === 'list') return Array.isArray(raw) ? raw : String(raw).split(',').filter((v) => v !== '');
  if (spec.kind === 'boolean') return raw === true || raw === 'true' || raw === '1';
  const text = String(raw);
  if (spec.kind === 'integer') {
    if (!/^-?\d+$/.test(text)) throw new SynclineError('invalid_config', `--${spec.flag} must be a whole number, got "${text}"`, { field: name });
    return Number(text);
  }
  if (spec.choices && !spec.choices.includes(text)) {
    throw new SynclineError('invalid_config', `--${spec.flag} must be one of ${spec.choices.join(', ')}, got "${text}"`, { field: name });
  }
  return text;
}

export function parseCommand<T extends OptionTable>(table: T, argv: string[], env: NodeJS.ProcessEnv = process.env): ParsedCommand<T> {
  const config = Object.fromEntries(
    Object.values(table).map((spec) => [spec.flag, { type: spec.kind === 'boolean' ? ('boolean' as const) : ('string' as const), multiple: spec.kind === 'list' }]),
  );
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: config, allowPositionals: true, strict: true });
  } catch (error) {
    // Node's own wording for an unknown flag explains positionals after '--', which no command here takes.
    // and for a flag without its value (`--token --once`, when $TOKEN was empty) three sentences about dashes.
    const message = (error as Error).message;
    const unknown = /^Unknown option '([^']+)'/.exec(message);
    if (unknown) throw new SynclineError('invalid_config', `unknown option ${unknown[1]}`, { field: unknown[1] });
    const valueless = /^Option '(--[a-z0-9-]+)(?: <value>)?' argument (?:missing|is ambiguous)/.exec(message);
    if (valueless) throw new SynclineError('invalid_config', `${valueless[1]} needs a value`, { field: valueless[1] });
    throw new SynclineError('invalid_config', message);
  }
  const options: Record<string, string | number | boolean | string[]> = {};
  for (const [name, spec] of Object.entries(table)) {
    const fromFlag = parsed.values[spec.flag];
    const fromEnv = spec.env ? env[spec.env] : undefined;
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined) ?? spec.default;
    if (raw === undefined) {
      if (spec.required) {
        throw new SynclineError('invalid_config', `--${spec.flag}${spec.env ? ` (or ${spec.env})` : ''} is required`, { field: name });
      }
      continue;
    }
    options[name] = convert(name, spec, raw as string | boolean | string[]);
  }
  return { options: options as ParsedOptions<T>, positionals: parsed.positionals };
}

export function helpText(usage: string, summary: string, table: OptionTable): string {
  const lines = [`usage: ${usage}`, '', summary, ''];
  const entries = Object.values(table);
  if (entries.length > 0) lines.push('options:');
  for (const spec of entries) {
    const value = spec.kind === 'boolean' ? '' : spec.choices ? ` <${spec.choices.join('|')}>` : spec.kind === 'list' ? ' <value> (repeatable)' : ' <value>';
    const extras = [
      spec.env ? `env ${spec.env}` : '',
      spec.default !== undefined && !spec.secret ? `default ${String(spec.default)}` : '',
      spec.required ? 'required' : '',
    ].filter(Boolean);
    // A flag longer than the column still keeps two spaces before its description.
    lines.push(`  --${spec.flag}${value}  `.padEnd(36) + spec.description + (extras.length ? ` (${extras.join('; ')})` : ''));
  }
  return lines.join('\n');
}
