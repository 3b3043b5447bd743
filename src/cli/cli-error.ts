import { isSynclineError, type ErrorCode } from '../protocol/errors.js';
import { isTransportError } from '../transport/transport.js';
import { printable } from './output.js';

/**
 * What a person reads when a command fails: one line,
 * `syncline: <what failed>: <why> [code]. <what to do>`. The stack is for
 * developers and only printed when asked for (--verbose or SYNCLINE_LOG_LEVEL=debug).
 */

/** The next step for each kind of failure; said once, and not when the message already gives one. */
const NEXT_STEP: Partial<Record<ErrorCode, string>> = {
  invalid_config: 'Run the command with --help for its options',
  invalid_request: 'Check the values passed; --help lists them',
  unauthorized: 'Check the token: `syncline admin device create` prints a device token, SYNCLINE_ADMIN_TOKEN is the admin token',
  forbidden: 'Use a token that may do this (admin tokens have the roles viewer, operator, admin)',
  not_found: 'Check the id; the list commands (e.g. `syncline admin lineages`) show the existing ones',
  stale_version: 'Run the command again without --version, or quote the current action version',
  conflict: 'Look at the current state (e.g. `syncline admin reviews show ID`) and run the command again',
  transport_failed: 'Check that the server is running and that --server (or SYNCLINE_SERVER) points at it',
  broker_unavailable: 'Check that the broker is running and that --mqtt-url points at it',
  unavailable: 'The server is starting or stopping; try again in a moment',
  internal: 'The server logged the details; try again, and report it if it persists',
  capture_failed: 'Check the --db path and that no other agent owns the file',
  checkpoint_expired: 'Start again with --snapshot (or without --checkpoint/--from)',
};

/** Next steps for the operating system's refusals, by errno code. */
const SYSTEM_NEXT_STEP: Record<string, string> = {
  EADDRINUSE: 'Another process holds that port; pass another --http-port (or --mqtt-port), or stop the other process',
  EACCES: 'Check the permissions of that file or port',
  ENOENT: 'Check the path',
};

/** Verbs that open a next step inside a message ("...; pass --x", "(check the path)"). */
const TOLD = 'check|run|pass|use|get|sign|issue|drop|delete|set|start|restart|wait';

export function wantsVerbose(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): boolean {
  const level = env.SYNCLINE_LOG_LEVEL;
  return argv.includes('--verbose') || level === 'debug' || level === 'trace';
}

function sentence(text: string): string {
  // One line: a message listing problems on lines of their own ("...:\n  - a\n  - b") becomes "...: a; b".
  const joined = text
    .trim()
    .replace(/:\s*\n\s*(?:- )?/g, ': ')
    .replace(/\s*\n\s*(?:- )?/g, '; ');
  return printable(joined).replace(/[.\s]+$/, '');
}

export function errorLine(error: unknown, what: string): string {
  let why: string;
  let code: string | undefined;
  let next: string | undefined;
  if (isSynclineError(error)) {
    why = error.message;
    code = error.code;
    next = NEXT_STEP[error.code];
  } else if (isTransportError(error)) {
    why = error.message;
    code = error.code ?? (error.status !== undefined ? `http ${error.status}` : undefined);
    next = error.status === 401 || error.status === 403 ? NEXT_STEP.unauthorized : error.status === undefined ? NEXT_STEP.transport_failed : undefined;
  } else {
    why = error instanceof Error ? error.message : String(error);
    next = SYSTEM_NEXT_STEP[(error as { code?: string }).code ?? ''];
  }
  const text = sentence(why);
  // A message that already says what to do (in parentheses or after "; ") is not told twice.
  const told = next !== undefined && (new RegExp(`\\((${TOLD})\\b[^)]*\\)`, 'i').test(text) || new RegExp(`[;:] (${TOLD})\\b`, 'i').test(text));
  return `syncline: ${what}: ${text}${code ? ` [${code}]` : ''}.${next && !told ? ` ${next}.` : ''}`;
}

/** The command words of argv for "what failed": `agent`, `admin reviews approve`. */
export function commandLabel(argv: readonly string[]): string {
  const [name, ...rest] = argv;
  if (!name) return 'syncline';
  const words: string[] = [name];
  for (const arg of rest) {
    if (arg.startsWith('-') || words.length >= (name === 'admin' ? 3 : 1)) break;
    words.push(arg);
  }
  return words.join(' ');
}
