import { authenticateDevice, createDevice, type DeviceIdentity } from '../../src/cloud/auth/devices.js';
import { readMirrorRows } from '../../src/cloud/query/mirror-rows.js';
import type { Store } from '../../src/cloud/store/store.js';
import { decodeValue, type SqlValue } from '../../src/protocol/values.js';

/** A new device of the default project, with its identity and token. */
export async function newDevice(store: Store, name = 'test-device'): Promise<DeviceIdentity & { token: string }> {
  const created = await createDevice(store, { name });
  return { ...(await authenticateDevice(store, created.token)), token: created.token };
}

/** Deletes a device as an operator would in SQL (Syncline itself never deletes one): its broker credentials reference it without cascade, so they go first. */
export async function deleteDevice(store: Store, deviceId: string): Promise<void> {
  await store.transaction(async (tx) => {
    await tx.query('DELETE FROM device_broker_credentials WHERE device_id = $1', [deviceId]);
    await tx.query('DELETE FROM devices WHERE id = $1', [deviceId]);
  });
}

/** Every mirror row of a lineage, through the same reader the admin API uses. */
export async function allMirrorRows(store: Store, lineageId: string): Promise<Record<string, unknown>[]> {
  const rows: Record<string, unknown>[] = [];
  let after: string | undefined;
  do {
    const page = await readMirrorRows(store, lineageId, after === undefined ? { limit: 1000 } : { limit: 1000, after });
    rows.push(...page.rows);
    after = page.next ?? undefined;
  } while (after !== undefined);
  return rows;
}

/** The source columns of mirror rows, decoded back to SQLite values. */
export function decodedColumns(rows: readonly Record<string, unknown>[], columns: readonly string[]): SqlValue[][] {
  return rows.map((row) => columns.map((c) => decodeValue(row[c] ?? null)));
}

/** Everything ingest may touch for one device, to prove a refused request changed nothing. */
export async function deviceState(store: Store, deviceId: string): Promise<unknown> {
  const lineages = await store.query<Record<string, unknown>>(
    'SELECT * FROM edge_table_lineages WHERE device_id = $1 ORDER BY source_table',
    [deviceId],
  );
  const ledger = await store.query('SELECT batch_id, ack FROM edge_export_segments WHERE device_id = $1 ORDER BY batch_id', [deviceId]);
  const staged = await store.query(
    'SELECT s.batch_id, s.seq, s.op, s.pk, s.row FROM edge_staged_rows s JOIN edge_table_lineages l ON l.id = s.lineage_id WHERE l.device_id = $1 ORDER BY s.id',
    [deviceId],
  );
  const mirrors: Record<string, unknown> = {};
  for (const lineage of lineages.rows) mirrors[String(lineage.source_table)] = await allMirrorRows(store, String(lineage.id));
  return { lineages: lineages.rows, ledger: ledger.rows, staged: staged.rows, mirrors };
}
