import { useEffect, useState } from 'preact/hooks';
import { liveFiguresSchema, type LiveFiguresAnswer } from '../../protocol/admin-answers.js';
import { Routes } from '../../protocol/constants.js';
import { stream } from './api.js';

const fixed = (n: number, digits = 1) => (Number.isInteger(n) ? String(n) : n.toFixed(digits));

/** Ingest rate, ack time and backlog, pushed by the server every second (no reload, no polling). */
export function LiveStrip() {
  const [figures, setFigures] = useState<LiveFiguresAnswer | null>(null);
  useEffect(() => {
    const stop = new AbortController();
    stream(Routes.live, (event, data) => {
      if (event !== 'figures') return;
      const parsed = liveFiguresSchema.safeParse(JSON.parse(data));
      if (parsed.success) setFigures(parsed.data);
    }, stop.signal);
    return () => stop.abort();
  }, []);
  return (
    <section class="live" aria-label="Live figures">
      <span>
        Ingest <b data-live="rows">{figures ? fixed(figures.rows_per_s) : '–'}</b> rows/s (<b>{figures ? fixed(figures.batches_per_s) : '–'}</b> batches/s)
      </span>
      <span>
        Ack <b data-live="ack">{figures?.ack_ms == null ? '–' : `${fixed(figures.ack_ms)} ms`}</b>
      </span>
      <span>
        Staged <b data-live="staged">{figures ? figures.staged_rows : '–'}</b> rows
      </span>
      <span>
        Paused <b>{figures ? figures.paused_lineages : '–'}</b> · open reviews <b>{figures ? figures.open_reviews : '–'}</b>
      </span>
    </section>
  );
}
