import { telemetryApproveAnswerSchema, telemetryLatestSchema, telemetryMappingListSchema, telemetrySeriesSchema } from '../protocol/admin-answers.js';
import { Routes } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { AdminClient } from './admin-client.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { formatTable, listJson, printResult } from './output.js';

const telemetryOptions = {
  server: { flag: 'server', env: 'SYNCLINE_SERVER', kind: 'string', default: 'http://127.0.0.1:8080', description: 'base URL of the syncline server' },
  adminToken: { flag: 'admin-token', env: 'SYNCLINE_ADMIN_TOKEN', kind: 'string', required: true, secret: true, description: 'admin bearer token' },
  json: { flag: 'json', kind: 'boolean', default: false, description: 'print JSON for scripts instead of a table' },
  device: { flag: 'device', kind: 'string', description: 'device id (query, latest)' },
  point: { flag: 'point', kind: 'string', description: 'point name, e.g. sensor_readings.temp (query)' },
  from: { flag: 'from', kind: 'string', description: 'start, ISO 8601 or ms since 1970 (query; default: an hour ago)' },
  to: { flag: 'to', kind: 'string', description: 'end, exclusive (query; default: now)' },
  bucket: { flag: 'bucket', kind: 'string', default: '1m', description: 'bucket width: a number with s, m, h or d (query)' },
  agg: { flag: 'agg', kind: 'string', default: 'avg', choices: ['avg', 'min', 'max', 'sum', 'count', 'last'], description: 'aggregate per bucket (query)' },
  status: { flag: 'status', kind: 'string', choices: ['pending', 'approved'], description: 'only mappings in this state (mappings)' },
  column: { flag: 'column', kind: 'list', description: 'approve: NAME=point[:POINT_NAME[:numeric|text|boolean]] or NAME=ignore, one per column' },
  timeUnit: { flag: 'time-unit', kind: 'string', choices: ['auto', 's', 'ms', 'us'], description: 'approve: unit of a numeric time column (auto: by size)' },
  help: { flag: 'help', kind: 'boolean', default: false, description: 'show this help' },
} satisfies OptionTable;

const USAGE = `syncline admin telemetry query --device ID --point NAME [--from T] [--to T] [--bucket 1m] [--agg avg|min|max|sum|count|last]
       syncline admin telemetry latest --device ID
       syncline admin telemetry mappings [--status pending|approved]
       syncline admin telemetry approve MAPPING_ID --column temp=point --column note=ignore [--column hum=point:room.humidity:numeric] [--time-unit ms]`;

/** `--column NAME=point[:POINT[:KIND]]` or `NAME=ignore`. */
function columnDecision(text: string): Record<string, string> {
  const at = text.lastIndexOf('=');
  const name = text.slice(0, at);
  const [action, point, kind] = text.slice(at + 1).split(':');
  if (at <= 0 || (action !== 'point' && action !== 'ignore')) throw new SynclineError('invalid_config', `--column takes NAME=point[:POINT[:KIND]] or NAME=ignore, got ${JSON.stringify(text)}`, { field: 'column' });
  return { name, action, ...(point ? { point } : {}), ...(kind ? { kind } : {}) };
}

export async function runAdminTelemetry(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv.includes('--help')) {
    process.stdout.write(`${helpText(USAGE, 'Telemetry: values per point over time (buckets with gaps shown), the latest value of each point, and the review of column mappings.', telemetryOptions)}\n`);
    return argv.length === 0 ? 2 : 0;
  }
  const { options, positionals } = parseCommand(telemetryOptions, argv);
  const client = new AdminClient(options.server, options.adminToken);
  const [action, id] = positionals;
  const need = (value: string | undefined, flag: string) => {
    if (!value) throw new SynclineError('invalid_config', `--${flag} is required (syncline admin telemetry --help)`, { field: flag });
    return value;
  };
  if (action === 'query') {
    const query = new URLSearchParams({
      device: need(options.device, 'device'),
      point: need(options.point, 'point'),
      from: options.from ?? new Date(Date.now() - 3_600_000).toISOString(),
      to: options.to ?? new Date().toISOString(),
      bucket: options.bucket,
      agg: options.agg,
    });
    const series = await client.request('GET', `${Routes.telemetryQuery}?${query}`, telemetrySeriesSchema);
    printResult(series, options.json, () => formatTable(series.buckets.map((b) => ({ ...b, value: b.value === null ? '(no data)' : String(b.value) })), ['start', 'count', 'value']));
    return 0;
  }
  if (action === 'latest') {
    const latest = await client.request('GET', `${Routes.telemetryLatest}?${new URLSearchParams({ device: need(options.device, 'device') })}`, telemetryLatestSchema);
    printResult(latest, options.json, () => formatTable(latest.points, ['point', 'kind', 'ts', 'value']));
    return 0;
  }
  if (action === 'mappings') {
    const { mappings } = await client.request('GET', `${Routes.telemetryMappings}${options.status ? `?status=${options.status}` : ''}`, telemetryMappingListSchema);
    printResult(listJson(mappings), options.json, () => formatTable(mappings.map((m) => ({ ...m, columns: m.columns.map((c) => c.name).join(', ') })), ['id', 'source_table', 'status', 'time_column', 'columns', 'staged_rows']));
    return 0;
  }
  if (action === 'approve') {
    if (!id) throw new SynclineError('invalid_config', 'MAPPING_ID is required (syncline admin telemetry mappings lists them)', { field: 'id' });
    const body = { columns: (options.column ?? []).map(columnDecision), ...(options.timeUnit ? { time_unit: options.timeUnit } : {}) };
    const done = await client.request('POST', Routes.telemetryMappingApprove.replace(':id', encodeURIComponent(id)), telemetryApproveAnswerSchema, body);
    printResult(done, options.json, () => `mapping ${id} approved; ${done.replayed_rows} staged rows stored`);
    return 0;
  }
  throw new SynclineError('invalid_config', `unknown telemetry subcommand "${positionals.join(' ')}" (run \`syncline admin telemetry --help\`)`);
}
