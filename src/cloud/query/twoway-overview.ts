import type { TwowayOverviewAnswer } from '../../protocol/admin-answers.js';
import { twowayFleetTotals } from '../metrics/activity-recorder.js';
import type { Queryable } from '../store/store.js';

const LIMIT = 200;

/**
 * Two-way sync at a glance: scopes with their head, the sources (devices) that
 * pushed into each with their newest bundle, how far each device has pulled, the
 * latest bundles, the push/pull/conflict counters of every server process, and
 * this process's open snapshots.
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
  // The furthest behind first: those are the devices an operator looks for.
  const watermarks = await db.query<{ scope: string; source: string; after_seq: string; pulled_seq: string; head_seq: string; behind: string; pulled_at: Date }>(
    `SELECT w.scope, w.source, w.after_seq::text AS after_seq, w.pulled_seq::text AS pulled_seq, coalesce(s.head_seq, 0)::text AS head_seq,
            greatest(coalesce(s.head_seq, 0) - w.pulled_seq, 0)::text AS behind, w.pulled_at
     FROM sync_pull_watermarks w LEFT JOIN sync_scopes s ON s.scope = w.scope
     ORDER BY greatest(coalesce(s.head_seq, 0) - w.pulled_seq, 0) DESC, w.scope, w.source LIMIT ${LIMIT}`,
  );
  const recent = await db.query<{ scope: string; bundle_seq: string; source: string; row_count: number; committed_at: Date }>(
    'SELECT scope, bundle_seq::text AS bundle_seq, source, row_count, committed_at FROM sync_bundles ORDER BY committed_at DESC, bundle_seq DESC LIMIT 50',
  );
  const totals = await twowayFleetTotals(db);
  return {
    scopes: scopes.rows.map((r) => ({ ...r, bundles: Number(r.bundles), last_commit: r.last_commit?.toISOString() ?? null })),
    sources: sources.rows.map((r) => ({ ...r, bundles: Number(r.bundles), last_commit: r.last_commit.toISOString() })),
    watermarks: watermarks.rows.map((r) => ({ ...r, pulled_at: r.pulled_at.toISOString() })),
    recent_bundles: recent.rows.map((r) => ({ ...r, committed_at: r.committed_at.toISOString() })),
    counters: {
      committed: totals.push_committed,
      duplicate: totals.push_duplicate,
      conflict: totals.push_conflict,
      conflicting_rows: totals.conflicting_rows,
      pulls: totals.pulls,
      pulled_bundles: totals.pulled_bundles,
      snapshots: totals.snapshots,
    },
    snapshots,
  };
}
