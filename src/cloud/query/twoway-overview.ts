import type { TwowayOverviewAnswer } from '../../protocol/admin-answers.js';
import { twowayTotals } from '../metrics/instruments.js';
import type { Queryable } from '../store/store.js';

const LIMIT = 200;

/**
 * Two-way sync at a glance: scopes with their head, the sources (devices) that
 * pushed into each with their newest bundle, the latest bundles, and this
 * process's push/pull/conflict counters and open snapshots. Devices keep their
 * pull watermarks themselves; the server knows what each source pushed.
 */
export async function twowayOverview(db: Queryable, snapshots: { open: number; bytes: number } | null): Promise<TwowayOverviewAnswer> {
  const scopes = await db.query<{ scope: string; head_seq: string; floor_seq: string; bundles: string; last_commit: Date | null }>(
    `SELECT s.scope, s.head_seq::text AS head_seq, s.floor_seq::text AS floor_seq, count(b.bundle_seq)::text AS bundles, max(b.committed_at) AS last_commit
     FROM sync_scopes s LEFT JOIN sync_bundles b ON b.scope = s.scope GROUP BY s.scope ORDER BY s.scope LIMIT ${LIMIT}`,
  );
  const sources = await db.query<{ scope: string; source: string; last_seq: string; bundles: string; last_commit: Date }>(
    `SELECT scope, source, max(bundle_seq)::text AS last_seq, count(*)::text AS bundles, max(committed_at) AS last_commit
     FROM sync_bundles GROUP BY scope, source ORDER BY max(committed_at) DESC LIMIT ${LIMIT}`,
  );
  const recent = await db.query<{ scope: string; bundle_seq: string; source: string; row_count: number; committed_at: Date }>(
    'SELECT scope, bundle_seq::text AS bundle_seq, source, row_count, committed_at FROM sync_bundles ORDER BY committed_at DESC, bundle_seq DESC LIMIT 50',
  );
  return {
    scopes: scopes.rows.map((r) => ({ ...r, bundles: Number(r.bundles), last_commit: r.last_commit?.toISOString() ?? null })),
    sources: sources.rows.map((r) => ({ ...r, bundles: Number(r.bundles), last_commit: r.last_commit.toISOString() })),
    recent_bundles: recent.rows.map((r) => ({ ...r, committed_at: r.committed_at.toISOString() })),
    counters: await twowayTotals(),
    snapshots,
  };
}
