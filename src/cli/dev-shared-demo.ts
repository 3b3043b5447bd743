import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import type { Logger } from 'pino';
import { parseSharedConfig, type SharedSyncConfig } from '../cloud/shared/declarations.js';
import { SharedSync } from '../device/twoway/shared-sync.js';

/**
 * The two-way half of `syncline dev`: a shared `todos` table and two devices of
 * one user, phone and laptop, each editing its own SQLite file while offline-first
 * sync keeps them (and PostgreSQL) equal, woken by the server's event stream.
 */

export const DEMO_USER = 'demo-user';

export function demoSharedConfig(secret: string): SharedSyncConfig {
  return parseSharedConfig({
    // The demo prints tokens for a month of tinkering; production keeps the one-day default.
    auth: { hs256_secret: secret, max_lifetime_sec: 31 * 86_400 },
    tables: [
      {
        name: 'todos',
        direction: 'both',
        key: ['id'],
        conflict: 'last_writer_wins',
        columns: [
          { name: 'id', type: 'TEXT' },
          { name: 'title', type: 'TEXT' },
          { name: 'done', type: 'INTEGER' },
          { name: 'edited_by', type: 'TEXT' },
        ],
      },
    ],
  });
}

export function demoSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function demoToken(secret: string, source: string): Promise<string> {
  return new SignJWT({ sid: source }).setProtectedHeader({ alg: 'HS256' }).setSubject(DEMO_USER).setIssuedAt().setExpirationTime('30d').sign(new TextEncoder().encode(secret));
}

export interface SharedDemo {
  devices: SharedSync[];
  /** One line per device: rows, pending changes, conflicts. */
  status(): Promise<string>;
  stop(): Promise<void>;
}

export async function startSharedDemo(options: { serverUrl: string; secret: string; dataDir: string; intervalMs: number; logger: Logger }): Promise<SharedDemo> {
  const devices: SharedSync[] = [];
  for (const name of ['phone', 'laptop']) {
    const sync = await SharedSync.open({ path: join(options.dataDir, `${name}.db`), serverUrl: options.serverUrl, token: await demoToken(options.secret, name), source: name, logger: options.logger.child({ device: name }) });
    sync.start({ pollMs: 10_000 });
    devices.push(sync);
  }
  let tick = 0;
  const edit = setInterval(() => {
    const device = devices[tick % devices.length]!;
    const id = `todo-${(tick % 7) + 1}`;
    device.db
      .prepare('INSERT INTO todos (id, title, done, edited_by) VALUES (?, ?, 0, ?) ON CONFLICT (id) DO UPDATE SET done = 1 - done, edited_by = excluded.edited_by')
      .run(id, `things to do #${(tick % 7) + 1}`, device.source);
    tick++;
  }, options.intervalMs * 3);
  return {
    devices,
    status: async () => {
      const lines = await Promise.all(
        devices.map(async (d) => {
          const rows = (d.db.prepare('SELECT count(*) AS n, sum(done) AS done FROM todos').get() as { n: bigint; done: bigint | null });
          return `  ${d.source.padEnd(7)} todos ${rows.n} (${rows.done ?? 0n} done)  pending ${await d.pending()}  conflicts ${(await d.conflicts()).length}  at bundle ${d.watermark}`;
        }),
      );
      return lines.join('\n');
    },
    async stop() {
      clearInterval(edit);
      for (const device of devices) await device.close();
    },
  };
}
