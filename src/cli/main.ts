import { isSynclineError } from '../protocol/errors.js';

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
  const lines = ['usage: syncline <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)}${c.summary}`);
  lines.push('', 'Run `syncline <command> --help` for the options of one command.');
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`syncline: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  return (await command.load())(rest);
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (error) {
  if (isSynclineError(error)) {
    process.stderr.write(`syncline: ${error.message} [${error.code}]\n`);
    process.exitCode = error.code === 'invalid_config' ? 2 : 1;
  } else {
    process.stderr.write(`syncline: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 1;
  }
}
