import { SynclineError } from '../../protocol/errors.js';
import type { PullAnswer, WireBundle, WireRowChange } from '../../protocol/shared-sync.js';
import type { WireValue } from '../../protocol/values.js';
import type { Store } from '../store/store.js';
import { pulls, type SharedSyncConfig } from './declarations.js';

export interface PullRequest {
  scope: string;
  after: bigint;
  /** The last ordinal already received of bundle `after`; absent when bundle `after` was received whole. */
  afterOrdinal?: number;
  /** The head the first page saw; later pages keep it so paging ends where it was meant to. */
  target?: bigint;
  limit: number;
}

interface BundleRow {
  bundle_seq: string;
  source: string;
  ordinal: number;
  tbl: string;
  op: string;
  key: WireValue[];
  row: WireValue[] | null;
  hlc: string;
}

const WHOLE = 2_147_483_647;

/**
 * Committed bundles after a device's watermark, in commit order, as pages of at
 * most `limit` rows. A page may end inside a bundle (marked incomplete) so a huge
 * bundle still streams in bounded pages; the device applies a bundle only once it
 * holds all of it. Only tables that sync down reach the device.
 */
export async function pullBundles(store: Store, config: SharedSyncConfig, request: PullRequest): Promise<PullAnswer> {
  const { rows: scopeRows } = await store.query<{ head_seq: string; floor_seq: string }>(
    'SELECT head_seq::text AS head_seq, floor_seq::text AS floor_seq FROM sync_scopes WHERE scope = $1',
    [request.scope],
  );
  const head = BigInt(scopeRows[0]?.head_seq ?? '0');
  const floor = BigInt(scopeRows[0]?.floor_seq ?? '0');
  if (request.after < floor) {
    throw new SynclineError('history_pruned', `bundles up to ${floor} were pruned; hydrate from a snapshot, then pull after it`, { floor_seq: floor.toString(), after: request.after.toString() });
  }
  const target = request.target !== undefined && request.target <= head ? request.target : head;
  const tables = config.tables.filter((t) => pulls(t.direction)).map((t) => t.name);
  const { rows } = await store.query<BundleRow>(
    `SELECT r.bundle_seq::text AS bundle_seq, b.source, r.ordinal, r.tbl, r.op::text AS op, r.key, r.row, r.hlc
       FROM sync_bundle_changes r JOIN sync_bundles b ON b.scope = r.scope AND b.bundle_seq = r.bundle_seq
      WHERE r.scope = $1 AND r.bundle_seq BETWEEN $2::bigint AND $4::bigint AND (r.bundle_seq, r.ordinal) > ($2::bigint, $3::int) AND r.tbl = ANY($5::text[])
      ORDER BY r.bundle_seq, r.ordinal
      LIMIT $6`,
    [request.scope, request.after.toString(), request.afterOrdinal ?? WHOLE, target.toString(), tables, request.limit + 1],
  );
  const more = rows.length > request.limit;
  const page = more ? rows.slice(0, request.limit) : rows;
  const bundles: WireBundle[] = [];
  for (const row of page) {
    let bundle = bundles.at(-1);
    if (bundle?.bundle_seq !== row.bundle_seq) {
      bundle = { bundle_seq: row.bundle_seq, source: row.source, rows: [], complete: true };
      bundles.push(bundle);
    }
    const change: WireRowChange & { version: string } = { table: row.tbl, op: row.op === 'D' ? 'delete' : 'upsert', key: row.key, hlc: row.hlc, version: row.bundle_seq };
    if (row.row !== null) change.row = row.row;
    bundle.rows.push(change);
  }
  const last = page.at(-1);
  if (more && last && rows[request.limit]!.bundle_seq === last.bundle_seq) bundles.at(-1)!.complete = false;
  return { bundles, target: target.toString(), next: more && last ? { after: last.bundle_seq, after_ordinal: last.ordinal } : null };
}
