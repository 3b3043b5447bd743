import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { SynclineError } from '../protocol/errors.js';

/**
 * What `syncline dev` must keep across restarts so it resumes exactly: the admin
 * token and JWT secret (every command it printed stays valid) and the demo
 * device (one lineage, one mirror). It lives in the data directory next to the
 * PGlite data it belongs to, readable by its owner only.
 */
const DevState = z.object({
  admin_token: z.string().min(1),
  jwt_secret: z.string().min(32),
  device: z.object({ device_id: z.string().min(1), token: z.string().min(1) }).nullable(),
});

export type DevState = z.infer<typeof DevState>;

export const devStatePath = (dataDir: string) => join(dataDir, 'dev-state.json');

export function readDevState(dataDir: string): DevState | undefined {
  let text: string;
  try {
    text = readFileSync(devStatePath(dataDir), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const parsed = DevState.safeParse(JSON.parse(text));
  if (!parsed.success) {
    throw new SynclineError('invalid_config', `${devStatePath(dataDir)} is damaged (${parsed.error.issues[0]?.message ?? 'unreadable'}); delete the data directory to start the demo afresh`, { field: 'data' });
  }
  return parsed.data;
}

export function writeDevState(dataDir: string, state: DevState): void {
  const path = devStatePath(dataDir);
  writeFileSync(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}
