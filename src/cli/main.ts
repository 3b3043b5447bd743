import { readFileSync } from 'node:fs';
import { commandLabel, errorLine, wantsVerbose } from './cli-error.js';

type Run = (argv: string[]) => Promise<number>;

// Commands load lazily: `syncline agent` on a device never loads the cloud's modules.
const COMMANDS: Record<string, { summary: string; load: () => Promise<Run> }> = {
  dev: { summary: 'server on PGlite + a demo device writing a SQLite file (what `npm start` runs)', load: async () => (await import('./dev-command.js')).runDev },
  server: { summary: 'the cloud: ingest API, governance, mirrors', load: async () => (await import('./server-command.js')).runServer },
  agent: { summary: 'capture a SQLite file and ship its changes to the cloud', load: async () => (await import('./agent-command.js')).runAgent },
  admin: { summary: 'operator commands against a running server (devices, lineages, mirror rows)', load: async () => (await import('./admin-command.js')).runAdmin },
  watch: { summary: 'print the local change stream of a SQLite file', load: async () => (await import('./watch-command.js')).runWatch },
};

function usage(): string {
  const lines = ['usage: syncline <command> [options]', '       syncline --version', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)}${c.summary}`);
  lines.push('', 'Run `syncline <command> --help` for the options of one command.', 'Errors are one line; --verbose (or SYNCLINE_LOG_LEVEL=debug) adds the stack.');
  return lines.join('\n');
}

function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v' || name === 'version') {
    process.stdout.write(`syncline ${version()} (node ${process.version})\n`);
    return 0;
  }
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`syncline: unknown command "${name}". Run \`syncline --help\` for the commands.\n`);
    return 2;
  }
  return (await command.load())(rest);
}

const argv = process.argv.slice(2);
const verbose = wantsVerbose(argv);
try {
  process.exitCode = await main(argv.filter((arg) => arg !== '--verbose'));
} catch (error) {
  process.stderr.write(`${errorLine(error, commandLabel(argv.filter((arg) => arg !== '--verbose')))}\n`);
  if (verbose && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exitCode = (error as { code?: string }).code === 'invalid_config' ? 2 : 1;
}
