import type { Store } from '../store/store.js';
import { ingestTotals, type IngestTotals } from './instruments.js';

export interface LiveFigures {
  at: string;
  /** Over the last interval, in this process (every worker's, under `server --workers`). */
  batches_per_s: number;
  rows_per_s: number;
  /** Mean time to answer a batch over the interval; null when none was answered. */
  ack_ms: number | null;
  /** Fleet-wide, from the store. */
  staged_rows: number;
  paused_lineages: number;
  open_reviews: number;
}

/** Samples the ingest counters (`totals`: this process's by default) and the store every `intervalMs` and hands each difference to `emit` until stopped. */
export function sampleLiveFigures(store: Store, intervalMs: number, emit: (figures: LiveFigures) => void, totalsOf: () => Promise<IngestTotals> = ingestTotals): () => void {
  let previous: IngestTotals | undefined;
  let stopped = false;
  let at = Date.now();
  const tick = async () => {
    const totals = await totalsOf();
    const now = Date.now();
    const { rows } = await store.query<{ staged: string | null; paused: string; reviews: string }>(
      `SELECT (SELECT sum(staged_rows) FROM edge_lineage_flow)::text AS staged,
              (SELECT count(*) FROM edge_table_lineages WHERE status = 'paused')::text AS paused,
              (SELECT count(*) FROM edge_schema_reviews WHERE status IN ('queued', 'in_review'))::text AS reviews`,
    );
    const seconds = Math.max((now - at) / 1000, 0.001);
    const base = previous ?? totals;
    const acks = totals.acks - base.acks;
    if (!stopped) {
      emit({
        at: new Date(now).toISOString(),
        batches_per_s: (totals.batches - base.batches) / seconds,
        rows_per_s: (totals.rows - base.rows) / seconds,
        ack_ms: acks > 0 ? ((totals.ackSeconds - base.ackSeconds) / acks) * 1000 : null,
        staged_rows: Number(rows[0]?.staged ?? 0),
        paused_lineages: Number(rows[0]?.paused ?? 0),
        open_reviews: Number(rows[0]?.reviews ?? 0),
      });
    }
    previous = totals;
    at = now;
  };
  const run = () => tick().catch(() => {});
  void run();
  const timer = setInterval(run, intervalMs);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
