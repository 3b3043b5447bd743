import type { ComponentChildren } from 'preact';
import { useState } from 'preact/hooks';
import { approveAnswerSchema, rejectAnswerSchema, reviewDetailSchema, reviewListSchema, reviewSchema, type ApproveAnswer, type ReviewDetailAnswer, type WhoAmIAnswer } from '../../../protocol/admin-answers.js';
import { Routes } from '../../../protocol/constants.js';
import { ApiError, call, path } from '../api.js';
import { can, short, useLoad, when } from '../use-load.js';
import { Value } from '../values.js';

const STATUSES = ['queued', 'in_review', 'approved', 'rejected', 'superseded'] as const;

export function Reviews() {
  const [status, setStatus] = useState('queued,in_review');
  const { data, error } = useLoad(() => call(reviewListSchema, `${Routes.schemaReviews}?status=${encodeURIComponent(status)}&limit=200`), [status]);
  return (
    <>
      <h1>Schema reviews</h1>
      <label for="review-status">Status</label>{' '}
      <select id="review-status" value={status} onChange={(e) => setStatus((e.target as HTMLSelectElement).value)}>
        <option value="queued,in_review">open (queued, in review)</option>
        {STATUSES.map((s) => (
          <option value={s}>{s}</option>
        ))}
      </select>
      {error && <p role="alert" class="error">{error}</p>}
      <div class="scroll">
        <table>
          <caption class="sr-only">Reviews</caption>
          <thead>
            <tr><th scope="col">Table</th><th scope="col">Device</th><th scope="col">Status</th><th scope="col">Classification</th><th scope="col">Summary</th><th scope="col">Opened</th></tr>
          </thead>
          <tbody>
            {data?.reviews.map((r) => (
              <tr>
                <td><a href={`#/reviews/${r.id}`}>{r.source_table}</a></td>
                <td><code>{short(r.device_id)}</code></td>
                <td><span class={`badge ${r.status}`}>{r.status}</span></td>
                <td>{r.classification}</td>
                <td>{r.summary}</td>
                <td>{when(r.created_at)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {data && data.reviews.length === 0 && <p>No reviews with this status.</p>}
    </>
  );
}

type Choice = { action: 'mirror' | 'mirror_as' | 'ignore' | 'defer'; target: string; pg_type: string };

/** The columns an approval names, and the others: in a follow-up of deferred columns only those are asked, the rest keep their earlier decision. */
function split(review: ReviewDetailAnswer) {
  const toDecide = new Set(review.columns_to_decide);
  return {
    toDecide,
    asked: review.schema.columns.filter((c) => toDecide.has(c.name)),
    kept: review.schema.columns.filter((c) => !toDecide.has(c.name)).map((c) => c.name),
  };
}

function Comparison({ review }: { review: ReviewDetailAnswer }) {
  const added = new Set(review.diff.added);
  const retyped = new Map(review.diff.retyped.map((r) => [r.name, r]));
  const { toDecide, kept } = split(review);
  return (
    <div class="scroll">
      {kept.length > 0 && <p class="hint">A follow-up of deferred columns: only these need a decision: {review.columns_to_decide.join(', ')}. The others keep their earlier decision.</p>}
      <table class="compare">
        <caption>Incoming schema beside the previous one</caption>
        <thead>
          <tr><th scope="col">Column</th><th scope="col">Incoming</th><th scope="col">Previous (mirror)</th><th scope="col">Change</th></tr>
        </thead>
        <tbody>
          {review.schema.columns.map((c) => {
            const change = added.has(c.name) ? 'added' : retyped.has(c.name) ? 'changed' : c.state === 'ignored' ? 'ignored' : 'same';
            const r = retyped.get(c.name);
            return (
              <tr class={`diff-${change}`}>
                <th scope="row">{c.name}{c.pk > 0 && <small> (key)</small>}{kept.length > 0 && toDecide.has(c.name) && <small> (to decide)</small>}</th>
                <td>{c.declared_type || '(none)'} <small>{c.affinity}</small></td>
                <td>{c.binding ? `${c.binding.target_column} ${c.binding.pg_type}` : '—'}</td>
                <td>{change === 'changed' && r ? `changed ${r.from} → ${r.to}` : change}</td>
              </tr>
            );
          })}
          {review.diff.dropped.map((name) => (
            <tr class="diff-removed">
              <th scope="row">{name}</th><td>—</td><td>(was mirrored)</td><td>removed</td>
            </tr>
          ))}
        </tbody>
      </table>
      {review.diff.unclear.length > 0 && <p class="hint">Unclear: {review.diff.unclear.join('; ')}</p>}
    </div>
  );
}

function Samples({ review }: { review: ReviewDetailAnswer }) {
  const columns = review.schema.columns.map((c) => c.name);
  return (
    <>
      <h2>Staged rows</h2>
      <p>
        {review.staged.rows} rows staged{review.staged.by_reason.length > 0 && ` (${review.staged.by_reason.map((r) => `${r.reason}: ${r.rows}`).join(', ')})`}; samples:
      </p>
      <div class="scroll">
        <table class="samples">
          <caption class="sr-only">Sample staged rows</caption>
          <thead>
            <tr><th scope="col">seq</th><th scope="col">op</th>{columns.map((c) => <th scope="col">{c}</th>)}</tr>
          </thead>
          <tbody>
            {review.staged.samples.map((row) => (
              <tr>
                <td>{row.seq}</td><td>{row.op}</td>
                {columns.map((c) => <td><Value value={row.values?.[c]} /></td>)}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** What an approval did. Deferred columns are decided in the follow-up review the server opened, so the notice links to it (the CLI names it too). */
function approved(answer: ApproveAnswer): ComponentChildren {
  const done = `Approved: mirrored into ${answer.mirror_table}${answer.replay ? `; replaying ${answer.replay.rows_total} staged rows` : ''}.`;
  if (answer.deferred.length === 0 || !answer.follow_up_review) return done;
  return (
    <>
      {done} Deferred {answer.deferred.join(', ')}: the lineage stays paused (new rows are staged, none is lost) until{' '}
      <a href={`#/reviews/${answer.follow_up_review}`}>the follow-up review</a> decides only these columns.
    </>
  );
}

function Decide({ review, me, onChanged }: { review: ReviewDetailAnswer; me: WhoAmIAnswer; onChanged: (message: ComponentChildren) => void }) {
  const { asked, kept } = split(review);
  const [choices, setChoices] = useState<Record<string, Choice>>(() =>
    Object.fromEntries(asked.map((c) => [c.name, { action: c.state === 'ignored' ? 'ignore' : 'mirror', target: c.binding?.target_column ?? c.default_mirror.target_column, pg_type: c.binding?.pg_type ?? c.default_mirror.pg_type }])),
  );
  const [reason, setReason] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const mine = review.status === 'in_review' && review.claimed_by === me.label;
  const set = (name: string, patch: Partial<Choice>) => setChoices((all) => ({ ...all, [name]: { ...all[name]!, ...patch } }));
  const act = async (run: () => Promise<ComponentChildren>) => {
    setBusy(true);
    setError(null);
    try {
      onChanged(await run());
    } catch (failure) {
      if (failure instanceof ApiError && failure.status === 409) {
        // Someone else acted first (or our copy is old): say what happened and show the review as it is now.
        onChanged(`Conflict: ${failure.message}. The review was reloaded; check it and decide again.`);
      } else setError(failure instanceof Error ? failure.message : String(failure));
    } finally {
      setBusy(false);
    }
  };
  const at = (suffix: string) => path(suffix, { id: review.id });
  if (!mine) {
    return (
      <div class="actions">
        <button type="button" disabled={busy} onClick={() => act(async () => (await call(reviewSchema, at(Routes.schemaReviewClaim), { method: 'POST', body: review.claimed_by ? { force: true } : {} }), 'Claimed.'))}>
          {review.claimed_by ? `Take over from ${review.claimed_by}` : 'Claim this review'}
        </button>
        {error && <p role="alert" class="error">{error}</p>}
      </div>
    );
  }
  const approve = () =>
    act(async () => {
      const columns = asked.map((c) => {
        const choice = choices[c.name]!;
        return choice.action === 'mirror_as' ? { name: c.name, action: 'mirror_as' as const, target: choice.target, pg_type: choice.pg_type } : { name: c.name, action: choice.action };
      });
      const answer = await call(approveAnswerSchema, at(Routes.schemaReviewApprove), { method: 'POST', body: { action_version: review.action_version, columns } });
      return approved(answer);
    });
  const reject = () => act(async () => (await call(rejectAnswerSchema, at(Routes.schemaReviewReject), { method: 'POST', body: { action_version: review.action_version, reason } }), 'Rejected.'));
  return (
    <form class="decide" onSubmit={(e) => (e.preventDefault(), approve())}>
      <fieldset>
        <legend>Column actions (version {review.action_version})</legend>
        {asked.map((c) => {
          const choice = choices[c.name]!;
          const id = `col-${c.name}`;
          return (
            <div class="column-action">
              <label for={id}>{c.name}</label>
              <select id={id} value={choice.action} onChange={(e) => set(c.name, { action: (e.target as HTMLSelectElement).value as Choice['action'] })}>
                <option value="mirror">mirror</option>
                <option value="mirror_as">mirror as…</option>
                <option value="ignore">ignore</option>
                <option value="defer">defer</option>
              </select>
              {choice.action === 'mirror_as' && (
                <>
                  <label for={`${id}-target`} class="sr-only">Mirror column name for {c.name}</label>
                  <input id={`${id}-target`} value={choice.target} required maxLength={63} onInput={(e) => set(c.name, { target: (e.target as HTMLInputElement).value })} />
                  <label for={`${id}-type`} class="sr-only">Mirror type for {c.name}</label>
                  <select id={`${id}-type`} value={choice.pg_type} onChange={(e) => set(c.name, { pg_type: (e.target as HTMLSelectElement).value })}>
                    {c.safe_types.map((t) => <option value={t}>{t}</option>)}
                  </select>
                </>
              )}
            </div>
          );
        })}
        {kept.length > 0 && <p class="hint">Decided before, kept as they are: {kept.join(', ')}</p>}
      </fieldset>
      <div class="actions">
        <button type="submit" disabled={busy}>Approve</button>
        <label for="reject-reason">Reason to reject</label>
        <input id="reject-reason" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} />
        <button type="button" class="danger" disabled={busy || reason.trim() === ''} onClick={reject}>Reject</button>
      </div>
      {error && <p role="alert" class="error">{error}</p>}
    </form>
  );
}

export function ReviewDetail({ id, me }: { id: string; me: WhoAmIAnswer }) {
  const { data: review, error, reload } = useLoad(() => call(reviewDetailSchema, path(Routes.schemaReview, { id })), [id]);
  const [message, setMessage] = useState<ComponentChildren>(null);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!review) return <p aria-busy="true">Loading…</p>;
  const open = review.status === 'queued' || review.status === 'in_review';
  return (
    <>
      <p><a href="#/reviews">← Reviews</a></p>
      <h1>Review of {review.lineage.source_table}</h1>
      <dl class="facts">
        <dt>Status</dt><dd><span class={`badge ${review.status}`} data-status={review.status}>{review.status}</span>{review.claimed_by && ` (claimed by ${review.claimed_by})`}</dd>
        <dt>Classification</dt><dd>{review.classification}: {review.summary}</dd>
        <dt>Device</dt><dd><code>{review.lineage.device_id}</code></dd>
        <dt>Lineage</dt><dd><a href={`#/lineages/${review.lineage_id}`}>{short(review.lineage_id)}</a> ({review.lineage.status}{review.lineage.mirror_table && `, mirror ${review.lineage.mirror_table}`})</dd>
      </dl>
      {message && <p role="status" class="notice">{message}</p>}
      <Comparison review={review} />
      <Samples review={review} />
      {open && can(me.role, 'operator') && (
        <Decide key={`${review.id}:${review.action_version}`} review={review} me={me} onChanged={(text) => (setMessage(text), reload())} />
      )}
      {!open && review.decided_by && <p>Decided by {review.decided_by} at {when(review.decided_at)}.</p>}
    </>
  );
}
