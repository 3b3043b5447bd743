import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { runSyncline } from '../support/processes.js';

/**
 * The README is the newcomer's manual: every `syncline` command it shows exists,
 * every flag it shows is in that command's --help, and its environment table and
 * the --help texts agree both ways (each run through the real CLI's --help).
 */
const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const COMMANDS = ['dev', 'server', 'agent', 'admin', 'watch'];

/** `syncline <words> --flags...` as the README writes it, in code, tables and prose. */
const shown = [...README.matchAll(/syncline((?: [a-z][a-z-]*)+)((?: +[^\s`|]+)*)/g)]
  .map(([text, words, rest]) => ({ text, words: words!.trim().split(' '), flags: [...`${words}${rest}`.matchAll(/(?<![\w-])--([a-z][a-z0-9-]*)/g)].map((f) => f[1]!) }))
  .filter((c) => COMMANDS.includes(c.words[0]!));

/** The help a reader would ask for: `syncline <command> --help`, or `syncline admin <group> --help`. */
const helpPath = (words: string[]) => (words[0] === 'admin' && words[1] ? ['admin', words[1]] : [words[0]!]);

test('every command and flag the README shows is in --help; the environment table and --help agree', async () => {
  const paths = new Map<string, string[]>();
  for (const c of shown) paths.set(helpPath(c.words).join(' '), helpPath(c.words));
  for (const command of COMMANDS) paths.set(command, [command]);
  const help = new Map<string, string>();
  for (const [key, path] of paths) {
    const run = await runSyncline([...path, '--help']);
    assert.equal(run.code, 0, `syncline ${key} --help: ${run.stderr}`);
    help.set(key, run.stdout);
  }
  assert.ok(shown.length > 30 && paths.size > 8, 'the README shows commands');

  const missing: string[] = [];
  for (const c of shown) {
    const path = helpPath(c.words);
    // Options of the admin command apply to its groups too (--server, --admin-token, --json).
    const text = help.get(path.join(' '))! + (path.length > 1 ? help.get(path[0]!)! : '');
    for (const flag of c.flags) if (!text.includes(`--${flag}`)) missing.push(`${path.join(' ')} --${flag} (README: ${c.text.slice(0, 80)})`);
  }
  assert.deepEqual(missing, [], 'flags the README shows that --help does not know');

  const table = [...README.matchAll(/^\| `([A-Z_]+)` \| `--([a-z-]+)` \| ([^|]+) \|$/gm)];
  assert.ok(table.length > 40, 'the environment table');
  const disagree: string[] = [];
  for (const [, variable, flag, commands] of table) {
    for (const command of commands!.split(',').map((c) => c.trim())) {
      const text = help.get(command) ?? (await runSyncline([...command.split(' '), '--help'])).stdout;
      if (!new RegExp(`--${flag}\\b[^\\n]*\\benv ${variable}\\b`).test(text)) disagree.push(`${variable}: \`syncline ${command} --help\` has no --${flag} read from it`);
    }
  }
  assert.deepEqual(disagree, []);
  const named = new Set([...[...help.values()].join('\n').matchAll(/\benv ([A-Z_]+)/g)].map((m) => m[1]!));
  assert.deepEqual([...named].filter((v) => !README.includes(`\`${v}\``)), [], 'variables --help names that the README does not document');
});

test('a subcommand or option that does not exist is said to be unknown, in one line, before anything else', async () => {
  for (const args of [['admin', 'lineage-list'], ['admin', 'lineage-list', '--help'], ['nosuch']]) {
    const run = await runSyncline(args, { SYNCLINE_ADMIN_TOKEN: '' });
    assert.equal(run.code, 2, args.join(' '));
    assert.equal(run.stdout, '');
    assert.match(run.stderr, /^syncline: .*unknown (admin sub)?command "(lineage-list|nosuch)".*\n$/);
  }
  const flag = await runSyncline(['agent', '--db', 'x.db', '--nosuch']);
  assert.equal(flag.code, 2);
  assert.equal(flag.stderr, 'syncline: agent: unknown option --nosuch [invalid_config]. Run the command with --help for its options.\n');
  // `--token $TOKEN --once` with an empty $TOKEN.
  const valueless = await runSyncline(['agent', '--db', 'x.db', '--token', '--once']);
  assert.equal(valueless.code, 2);
  assert.equal(valueless.stderr, 'syncline: agent: --token needs a value [invalid_config]. Run the command with --help for its options.\n');
});
