import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const { benchDrain } = await import('./drain.js');
for (const semi of [process.argv[2] === 'first' ? '64' : '', process.argv[2] === 'first' ? '' : '64']) {
  if (semi) process.env.NODE_OPTIONS = `--max-semi-space-size=${semi}`; else delete process.env.NODE_OPTIONS;
  const figures: any[] = [];
  await benchDrain({ add: (f: any) => figures.push(f) } as any, mkdtempSync(join(tmpdir(), 'sm-')));
  const d = figures[0].details, s = figures[1].details, r = figures[2].details;
  console.log(semi || 'default', 'server', d.drain_server_us_per_row, 'device', d.drain_device_us_per_row, 'pg', d.drain_postgres_us_per_row, 'rest', s.server_rest_http_ledger_copy_text, 'rows/s', r.drain_rows_per_s, 'copy', r.raw_copy_rows_per_s, 'load', r.load_average_1m);
}
