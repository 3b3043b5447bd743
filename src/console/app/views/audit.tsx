import { useState } from 'preact/hooks';
import { auditPageSchema } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { call } from '../api.js';
import { short, useLoad, when } from '../use-load.js';

const FILTERS = [['action', 'Action'], ['actor', 'Actor'], ['lineage_id', 'Lineage id'], ['review_id', 'Review id']] as const;

export function AuditLog() {
  const [draft, setDraft] = useState<Record<string, string>>({});
  const [filters, setFilters] = useState<Record<string, string>>({});
  const [before, setBefore] = useState<string[]>([]);
  const query = new URLSearchParams({ limit: '50', ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v.trim() !== '')), ...(before.length ? { before: before.at(-1)! } : {}) });
  const { data, error } = useLoad(() => call(auditPageSchema, `${Routes.audit}?${query}`), [query.toString()]);
  return (
    <>
      <h1>Audit log</h1>
      <form class="filters" onSubmit={(e) => (e.preventDefault(), setBefore([]), setFilters(draft))}>
        {FILTERS.map(([key, label]) => (
          <span>
            <label for={`audit-${key}`}>{label}</label>
            <input id={`audit-${key}`} value={draft[key] ?? ''} onInput={(e) => setDraft({ ...draft, [key]: (e.target as HTMLInputElement).value })} />
          </span>
        ))}
        <button type="submit">Filter</button>
      </form>
      {error && <p role="alert" class="error">{error}</p>}
      <div class="scroll">
        <table>
          <thead><tr><th scope="col">When</th><th scope="col">Actor</th><th scope="col">Action</th><th scope="col">Lineage</th><th scope="col">Review</th><th scope="col">Detail</th></tr></thead>
          <tbody>
            {data?.entries.map((e) => (
              <tr>
                <td>{when(e.at)}</td><td>{e.actor}</td><td>{e.action}</td>
                <td>{e.lineage_id ? <a href={`#/lineages/${e.lineage_id}`}>{short(e.lineage_id)}</a> : '—'}</td>
                <td>{e.review_id ? <a href={`#/reviews/${e.review_id}`}>{short(e.review_id)}</a> : '—'}</td>
                <td><code class="detail">{e.detail === null ? '' : JSON.stringify(e.detail)}</code></td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="actions">
        <button type="button" disabled={before.length === 0} onClick={() => setBefore([])}>Newest</button>
        <button type="button" disabled={!data?.next} onClick={() => data?.next && setBefore([...before, data.next])}>Older</button>
      </div>
    </>
  );
}
