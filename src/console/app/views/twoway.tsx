import { twowayOverviewSchema } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { call } from '../api.js';
import { useLoad, when } from '../use-load.js';

export function Twoway() {
  const { data, error } = useLoad(() => call(twowayOverviewSchema, Routes.twowayOverview), []);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!data) return <p aria-busy="true">Loading…</p>;
  const c = data.counters;
  return (
    <>
      <h1>Two-way sync</h1>
      <p>
        All servers on this database: {c.committed} pushes committed, {c.duplicate} duplicates, {c.conflict} refused with conflicts ({c.conflicting_rows} rows), {c.pulls} pulls ({c.pulled_bundles} bundles), {c.snapshots} snapshots started.
        {data.snapshots ? ` Snapshots held now: ${data.snapshots.open} (${data.snapshots.bytes} bytes).` : ' Two-way sync is off on this server.'}
      </p>
      <h2>Scopes</h2>
      <div class="scroll"><table><thead><tr><th scope="col">Scope</th><th scope="col">Head bundle</th><th scope="col">Pruned up to</th><th scope="col">Bundles kept</th><th scope="col">Last commit</th></tr></thead>
        <tbody>{data.scopes.map((s) => <tr><td>{s.scope}</td><td>{s.head_seq}</td><td>{s.floor_seq}</td><td>{s.bundles}</td><td>{when(s.last_commit)}</td></tr>)}</tbody></table></div>
      <h2>Pull watermarks</h2>
      <p class="hint">The bundle each device has pulled up to, and how far the scope's head is ahead of it (furthest behind first).</p>
      <div class="scroll"><table><caption class="sr-only">Pull watermarks</caption><thead><tr><th scope="col">Scope</th><th scope="col">Device (source)</th><th scope="col">Pulled up to</th><th scope="col">Head</th><th scope="col">Behind</th><th scope="col">Last pull</th></tr></thead>
        <tbody>{data.watermarks.map((w) => <tr><td>{w.scope}</td><td>{w.source}</td><td>{w.pulled_seq}</td><td>{w.head_seq}</td><td>{w.behind === '0' ? 'up to date' : <span class="badge paused">{w.behind} behind</span>}</td><td>{when(w.pulled_at)}</td></tr>)}</tbody></table></div>
      {data.watermarks.length === 0 && <p>No device has pulled yet.</p>}
      <h2>Pushes by device (sources)</h2>
      <p class="hint">The newest bundle each device pushed.</p>
      <div class="scroll"><table><thead><tr><th scope="col">Scope</th><th scope="col">Source</th><th scope="col">Newest pushed bundle</th><th scope="col">Bundles</th><th scope="col">Last push</th></tr></thead>
        <tbody>{data.sources.map((s) => <tr><td>{s.scope}</td><td>{s.source}</td><td>{s.last_seq}</td><td>{s.bundles}</td><td>{when(s.last_commit)}</td></tr>)}</tbody></table></div>
      <h2>Recent bundles</h2>
      <div class="scroll"><table><thead><tr><th scope="col">Scope</th><th scope="col">Seq</th><th scope="col">Source</th><th scope="col">Rows</th><th scope="col">Committed</th></tr></thead>
        <tbody>{data.recent_bundles.map((b) => <tr><td>{b.scope}</td><td>{b.bundle_seq}</td><td>{b.source}</td><td>{b.row_count}</td><td>{when(b.committed_at)}</td></tr>)}</tbody></table></div>
    </>
  );
}
