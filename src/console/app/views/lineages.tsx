import { useEffect, useState } from 'preact/hooks';
import { flowAnswerSchema, lineageDetailSchema, lineageListSchema, mirrorPageSchema, pauseAnswerSchema, purgeAnswerSchema, resetAnswerSchema, resumeAnswerSchema, type WhoAmIAnswer } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { call, path } from '../api.js';
import { can, short, useLoad, when } from '../use-load.js';
import { Value } from '../values.js';

export function Lineages() {
  const { data, error } = useLoad(() => call(lineageListSchema, Routes.lineages), []);
  return (
    <>
      <h1>Lineages</h1>
      {error && <p role="alert" class="error">{error}</p>}
      <div class="scroll">
        <table>
          <caption class="sr-only">Lineages</caption>
          <thead><tr><th scope="col">Table</th><th scope="col">Device</th><th scope="col">Status</th><th scope="col">Last seq</th><th scope="col">Received</th><th scope="col">Applied</th><th scope="col">Mirror</th></tr></thead>
          <tbody>
            {data?.lineages.map((l) => (
              <tr>
                <td><a href={`#/lineages/${l.id}`}>{l.source_table}</a></td>
                <td><code>{short(l.device_id)}</code></td>
                <td><span class={`badge ${l.status}`}>{l.status}</span> {l.pause_cause && <small>{l.pause_cause}</small>} {l.device_state === 'paused' && <span class="badge paused">device stopped: {l.device_pause_reason}</span>}</td>
                <td>{l.last_seq}</td><td>{l.rows_received}</td><td>{l.rows_applied}</td><td>{l.mirror_table ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

function MirrorRows({ id, mirror }: { id: string; mirror: string | null }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const after = cursors.at(-1);
  const { data, error } = useLoad(() => call(mirrorPageSchema, `${path(Routes.mirrorRows, { id })}?limit=25${after ? `&after=${encodeURIComponent(after)}` : ''}`), [id, after]);
  if (!mirror) return <p>No mirror table yet.</p>;
  const columns = data?.rows[0] ? Object.keys(data.rows[0]) : [];
  return (
    <section aria-label="Mirror rows">
      <h2>Mirror rows <small>({mirror})</small></h2>
      {error && <p role="alert" class="error">{error}</p>}
      <div class="scroll">
        <table class="mirror">
          <caption class="sr-only">Rows of {mirror}</caption>
          <thead><tr>{columns.map((c) => <th scope="col">{c}</th>)}</tr></thead>
          <tbody>{data?.rows.map((row) => <tr>{columns.map((c) => <td><Value value={row[c]} /></td>)}</tr>)}</tbody>
        </table>
      </div>
      {data && data.rows.length === 0 && <p>No rows.</p>}
      <div class="actions">
        <button type="button" disabled={cursors.length === 0} onClick={() => setCursors([])}>First page</button>
        <button type="button" disabled={!data?.next} onClick={() => data?.next && setCursors([...cursors, data.next])}>Next page</button>
      </div>
    </section>
  );
}

export function LineageDetail({ id, me }: { id: string; me: WhoAmIAnswer }) {
  const { data: lineage, error, reload } = useLoad(() => call(lineageDetailSchema, path(Routes.lineage, { id })), [id]);
  const { data: flow, reload: reloadFlow } = useLoad(() => call(flowAnswerSchema, path(Routes.lineageFlow, { id })), [id]);
  const [message, setMessage] = useState<string | null>(null);
  const replaying = lineage?.replay?.state === 'pending';
  // Replay progress moves while the backlog drains: follow it until done.
  useEffect(() => {
    if (!replaying) return;
    const timer = setInterval(reload, 1000);
    return () => clearInterval(timer);
  }, [replaying]);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!lineage) return <p aria-busy="true">Loading…</p>;
  const act = async (label: string, run: () => Promise<unknown>) => {
    try {
      await run();
      setMessage(`${label}: done.`);
    } catch (failure) {
      setMessage(`${label}: ${(failure as Error).message}`);
    }
    reload();
    reloadFlow();
  };
  const at = (route: string) => path(route, { id });
  const purge = () => {
    if (!confirm(`Discard the rows staged under rejected schemas of ${lineage.source_table}? They cannot be recovered; the purge is audited.`)) return;
    void act('Purge', () => call(purgeAnswerSchema, at(Routes.purgeStaged), { method: 'POST', body: {} }));
  };
  const replay = lineage.replay;
  return (
    <>
      <p><a href="#/lineages">← Lineages</a></p>
      <h1>{lineage.source_table} <small>on device <code>{short(lineage.device_id)}</code></small></h1>
      {message && <p role="status" class="notice">{message}</p>}
      <dl class="facts">
        <dt>Status</dt><dd><span class={`badge ${lineage.status}`}>{lineage.status}</span>{lineage.pause_cause && ` — ${lineage.pause_cause}`}{lineage.status_reason && `: ${lineage.status_reason}`}</dd>
        <dt>Last seq</dt><dd>{lineage.last_seq} (epoch <code>{lineage.journal_epoch ? short(lineage.journal_epoch) : '—'}</code>)</dd>
        <dt>Rows</dt><dd>{lineage.rows_received} received, {lineage.rows_applied} applied</dd>
        <dt>Staged</dt><dd>{lineage.staged_rows} rows{lineage.staged_by_reason.length > 0 && ` (${lineage.staged_by_reason.map((r) => `${r.reason}: ${r.rows}`).join(', ')})`}</dd>
        <dt>Replay</dt>
        <dd>
          {replay ? (
            <>
              {replay.state}: <progress max={Math.max(replay.rows_total, 1)} value={replay.rows_replayed + replay.rows_kept} aria-label="Replay progress" /> {replay.rows_replayed + replay.rows_kept} / {replay.rows_total}
              {replay.last_error && ` — ${replay.last_error}`}
            </>
          ) : '—'}
        </dd>
        <dt>Device flow</dt><dd>{flow ? `${flow.flow.device_state}${flow.flow.pause_reason ? ` (${flow.flow.pause_reason})` : ''}, ${flow.flow.consecutive_failures} consecutive failures` : '…'}</dd>
        <dt>Updated</dt><dd>{when(lineage.updated_at)}</dd>
      </dl>
      {can(me.role, 'operator') && (
        <div class="actions">
          {lineage.device_state === 'sending' && <button type="button" onClick={() => act('Pause', () => call(pauseAnswerSchema, at(Routes.lineagePause), { method: 'POST', body: { note: 'paused from the console' } }))}>Pause device sending</button>}
          <button type="button" onClick={() => act('Resume', () => call(resumeAnswerSchema, at(Routes.lineageResume), { method: 'POST' }))}>Resume</button>
          <button type="button" onClick={() => act('Reset materialization', () => call(resetAnswerSchema, at(Routes.lineageResetMaterialization), { method: 'POST' }))}>Reset materialization</button>
          <button type="button" class="danger" onClick={purge}>Purge staged…</button>
        </div>
      )}
      <MirrorRows id={id} mirror={lineage.mirror_table} />
    </>
  );
}
