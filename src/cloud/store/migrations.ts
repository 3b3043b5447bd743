import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';
import { edgeReplication } from './migrations/0001-edge-replication.js';
import { schemaGovernance } from './migrations/0002-schema-governance.js';
import { flowControl } from './migrations/0003-flow-control.js';
import { governanceAuditCoalescing } from './migrations/0004-governance-audit-coalescing.js';
import { sharedSync } from './migrations/0005-shared-sync.js';
import { rowRejections } from './migrations/0007-row-rejections.js';
import { backendCapture } from './migrations/0010-backend-capture.js';
import { telemetry } from './migrations/0011-telemetry.js';
import { bundleRowsJson } from './migrations/0012-bundle-rows-json.js';
import { telemetryFlow } from './migrations/0013-telemetry-flow.js';
import { fleetActivity } from './migrations/0014-fleet-activity.js';
import { rejectedRowsIndex } from './migrations/0015-rejected-rows-index.js';
import { lineageFlowTriggerWhen } from './migrations/0016-lineage-flow-trigger-when.js';
import { ingestWriteCost } from './migrations/0017-ingest-write-cost.js';
import { bundleChunks } from './migrations/0018-bundle-chunks.js';
import { revokedDevicesIndex } from './migrations/0019-revoked-devices-index.js';
import { deviceRevokedNotify } from './migrations/0020-device-revoked-notify.js';
import { deviceDeletedNotify } from './migrations/0021-device-deleted-notify.js';
import type { Store } from './store.js';

export interface Migration {
  /** Strictly increasing; never reuse or renumber a released version. */
  version: number;
  name: string;
  /** One or more statements, run inside the migration transaction. */
  sql: string;
}

/**
 * Every schema version, in order. To add one, write `migrations/000N-name.ts`
 * exporting a Migration and append it here; released entries never change.
 */
export const MIGRATIONS: readonly Migration[] = [edgeReplication, schemaGovernance, flowControl, governanceAuditCoalescing, sharedSync, rowRejections, backendCapture, telemetry, bundleRowsJson, telemetryFlow, fleetActivity, rejectedRowsIndex, lineageFlowTriggerWhen, ingestWriteCost, bundleChunks, revokedDevicesIndex, deviceRevokedNotify, deviceDeletedNotify];

/**
 * An arbitrary constant shared by every Syncline process: the transaction-scoped
 * advisory lock on it makes processes that start together on one PostgreSQL apply
 * each migration exactly once, one after the other.
 */
const MIGRATION_LOCK_KEY = 7_366_571_101;

export interface MigrationResult {
  applied: number[];
  current: number;
}

export async function migrate(store: Store, options: { migrations?: readonly Migration[]; logger?: Logger } = {}): Promise<MigrationResult> {
  const migrations = options.migrations ?? MIGRATIONS;
  checkOrder(migrations);
  return store.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS syncline_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const { rows } = await tx.query<{ version: number }>('SELECT version FROM syncline_migrations ORDER BY version');
    const done = new Set(rows.map((r) => r.version));
    const newest = rows.at(-1)?.version ?? 0;
    const known = migrations.at(-1)?.version ?? 0;
    if (newest > known) {
      throw new SynclineError('invalid_config', `the database is at schema version ${newest}, newer than this build knows (${known}); upgrade Syncline`, { version: newest });
    }
    const applied: number[] = [];
    for (const migration of migrations) {
      if (done.has(migration.version)) continue;
      await tx.exec(migration.sql);
      await tx.query('INSERT INTO syncline_migrations (version, name) VALUES ($1, $2)', [migration.version, migration.name]);
      applied.push(migration.version);
      options.logger?.info({ version: migration.version, name: migration.name }, 'applied migration');
    }
    return { applied, current: Math.max(newest, known) };
  });
}

function checkOrder(migrations: readonly Migration[]): void {
  let previous = 0;
  for (const m of migrations) {
    if (!Number.isInteger(m.version) || m.version <= previous) {
      throw new SynclineError('internal', `migration versions must increase: ${m.version} after ${previous}`);
    }
    previous = m.version;
  }
}
