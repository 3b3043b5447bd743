import { deviceCreatedSchema, deviceListSchema, deviceSchema, lineageDetailSchema, lineageListSchema, mirrorPageSchema } from '../protocol/admin-answers.js';
import { Routes } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { AdminClient } from './admin-client.js';
import { runAdminGovernance } from './admin-reviews.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { formatRecord, formatTable, listJson, printResult } from './output.js';

export const adminOptions = {
  server: { flag: 'server', env: 'SYNCLINE_SERVER', kind: 'string', default: 'http://127.0.0.1:8080', description: 'base URL of the syncline server' },
  adminToken: { flag: 'admin-token', env: 'SYNCLINE_ADMIN_TOKEN', kind: 'string', required: true, secret: true, description: 'admin bearer token' },
  json: { flag: 'json', kind: 'boolean', default: false, description: 'print JSON for scripts instead of a table' },
  name: { flag: 'name', kind: 'string', description: 'device name (device create)' },
  limit: { flag: 'limit', kind: 'integer', default: 50, description: 'rows per page (mirror-rows)' },
  after: { flag: 'after', kind: 'string', description: 'cursor from the previous page (mirror-rows)' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

const USAGE = `syncline admin <subcommand> [options]

subcommands:
  device create --name NAME     create a device; prints its token once
  device list                   list devices
  device revoke DEVICE_ID       revoke a device's token
  lineages                      list lineages (one per device and source table)
  lineage LINEAGE_ID            show one lineage
  mirror-rows LINEAGE_ID        page through a lineage's mirror rows (--limit, --after)
  reviews ...                   schema reviews, staged rows, replays (syncline admin reviews --help)
  audit                         the audit log of reviews, purges, replays and tokens
  token ...                     admin tokens with roles (syncline admin token --help)
  project ...                   projects and their coalescing setting
  telemetry ...                 telemetry queries, latest values and mapping reviews (syncline admin telemetry --help)
  shared uninstall              remove two-way sync's capture triggers, keep the data (syncline admin shared --help)
  mqtt-config ...               Mosquitto password and ACL files for an external broker (syncline admin mqtt-config --help)`;

/** `syncline admin <group> --help`: the usage and options of that group alone. */
const SUBCOMMAND_HELP: Record<string, { usage: string; summary: string; options: (keyof typeof adminOptions)[] }> = {
  device: {
    usage: 'syncline admin device create --name NAME [--json]\n       syncline admin device list [--json]\n       syncline admin device revoke DEVICE_ID [--json]',
    summary: 'Devices: create prints the new device\'s token once (--json: {"device_id","token"}); list shows every device; revoke stops its token from working.',
    options: ['name', 'json', 'server', 'adminToken'],
  },
  lineages: {
    usage: 'syncline admin lineages [--json]',
    summary: 'Lists the lineages: one per (device, source table), with status, last seq, rows applied and mirror table (--json: {"items","next"}).',
    options: ['json', 'server', 'adminToken'],
  },
  lineage: { usage: 'syncline admin lineage LINEAGE_ID [--json]', summary: 'Shows one lineage: status, epoch, last seq, counters, bound schema.', options: ['json', 'server', 'adminToken'] },
  'mirror-rows': {
    usage: 'syncline admin mirror-rows LINEAGE_ID [--limit 50] [--after CURSOR] [--json]',
    summary: 'Pages through the mirror rows of one lineage in key order (--json: {"items","next"}; pass next as --after).',
    options: ['limit', 'after', 'json', 'server', 'adminToken'],
  },
};

function subcommandHelp(group: string): string | undefined {
  const help = SUBCOMMAND_HELP[group];
  if (!help) return undefined;
  return helpText(help.usage, help.summary, Object.fromEntries(help.options.map((key) => [key, adminOptions[key]])));
}

const path = (route: string, id: string) => route.replace(':id', encodeURIComponent(id));

export async function runAdmin(argv: string[]): Promise<number> {
  if (argv[0] === 'reviews' || argv[0] === 'token' || argv[0] === 'audit' || argv[0] === 'project') return runAdminGovernance(argv);
  if (argv[0] === 'telemetry') return (await import('./admin-telemetry.js')).runAdminTelemetry(argv.slice(1));
  if (argv[0] === 'shared') return (await import('./admin-shared.js')).runAdminShared(argv.slice(1));
  if (argv[0] === 'mqtt-config') return (await import('./admin-mqtt-config.js')).runAdminMqttConfig(argv.slice(1));
  // An unknown word is said to be one before anything else (its --help, a missing token) is asked about.
  if (argv[0] && !argv[0].startsWith('-') && !Object.hasOwn(SUBCOMMAND_HELP, argv[0])) {
    throw new SynclineError('invalid_config', `unknown admin subcommand "${argv[0]}" (run \`syncline admin --help\` for the list)`);
  }
  const own = argv.includes('--help') && argv[0] ? subcommandHelp(argv[0]) : undefined;
  if (own) {
    process.stdout.write(`${own}\n`);
    return 0;
  }
  if (argv.length === 0 || argv.includes('--help')) {
    process.stdout.write(`${helpText(USAGE, 'Operator commands against a running server.', adminOptions)}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const { options, positionals } = parseCommand(adminOptions, argv);
  const client = new AdminClient(options.server, options.adminToken);
  const [group, action, id] = positionals;
  const needId = (value: string | undefined, what: string): string => {
    if (!value) throw new SynclineError('invalid_config', `${what} is required (run \`syncline admin ${group ?? ''} --help\`)`);
    return value;
  };

  switch (`${group} ${action ?? ''}`.trim()) {
    case 'device create': {
      if (!options.name) throw new SynclineError('invalid_config', '--name is required: syncline admin device create --name NAME', { field: 'name' });
      const created = await client.request('POST', Routes.devices, deviceCreatedSchema, { name: options.name });
      printResult(created, options.json, () =>
        `device ${created.device_id} created.\ntoken (shown once, keep it secret):\n  ${created.token}`,
      );
      return 0;
    }
    case 'device list': {
      const { devices } = await client.request('GET', Routes.devices, deviceListSchema);
      printResult(listJson(devices), options.json, () => formatTable(devices, ['device_id', 'name', 'created_at', 'revoked_at']));
      return 0;
    }
    case 'device revoke': {
      const revoked = await client.request('POST', `${path(Routes.device, needId(id, 'DEVICE_ID'))}/revoke`, deviceSchema);
      printResult(revoked, options.json, () => `device ${revoked.device_id} revoked at ${revoked.revoked_at}`);
      return 0;
    }
    case 'lineages': {
      const { lineages } = await client.request('GET', Routes.lineages, lineageListSchema);
      printResult(listJson(lineages), options.json, () =>
        formatTable(lineages, ['id', 'device_id', 'source_table', 'status', 'last_seq', 'rows_applied', 'mirror_table']),
      );
      return 0;
    }
    default:
      break;
  }
  if (group === 'lineage') {
    const lineage = await client.request('GET', path(Routes.lineage, needId(action, 'LINEAGE_ID')), lineageDetailSchema);
    printResult(lineage, options.json, () => formatRecord(lineage));
    return 0;
  }
  if (group === 'mirror-rows') {
    const query = new URLSearchParams({ limit: String(options.limit), ...(options.after ? { after: options.after } : {}) });
    const page = await client.request('GET', `${path(Routes.mirrorRows, needId(action, 'LINEAGE_ID'))}?${query}`, mirrorPageSchema);
    printResult(listJson(page.rows, page.next), options.json, () => `${formatTable(page.rows)}\n${page.next ? `next page: --after ${page.next}` : '(end)'}`);
    return 0;
  }
  throw new SynclineError('invalid_config', `unknown admin subcommand "${positionals.join(' ')}" (run \`syncline admin --help\` for the list)`);
}
