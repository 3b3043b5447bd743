import { SynclineError } from '../../protocol/errors.js';

/**
 * The schema review workflow as a transition table the compiler checks for
 * completeness: every status answers every action, with the next status or null
 * when the action is not allowed there.
 *
 *   queued ──claim──► in_review ──approve──► approved
 *     ▲                 │  │ └────reject───► rejected
 *     └─────release─────┘  └─claim (takeover, same status)
 *   queued | in_review ──supersede──► superseded (a newer schema replaced it)
 */
export type ReviewStatus = 'queued' | 'in_review' | 'approved' | 'rejected' | 'superseded';
export type ReviewAction = 'claim' | 'release' | 'approve' | 'reject' | 'supersede';

export const REVIEW_STATUSES: readonly ReviewStatus[] = ['queued', 'in_review', 'approved', 'rejected', 'superseded'];
export const OPEN_STATUSES: readonly ReviewStatus[] = ['queued', 'in_review'];

const TRANSITIONS: { readonly [S in ReviewStatus]: { readonly [A in ReviewAction]: ReviewStatus | null } } = {
  queued: { claim: 'in_review', release: null, approve: null, reject: null, supersede: 'superseded' },
  in_review: { claim: 'in_review', release: 'queued', approve: 'approved', reject: 'rejected', supersede: 'superseded' },
  approved: { claim: null, release: null, approve: null, reject: null, supersede: null },
  rejected: { claim: null, release: null, approve: null, reject: null, supersede: null },
  superseded: { claim: null, release: null, approve: null, reject: null, supersede: null },
};

export function isOpen(status: ReviewStatus): boolean {
  return OPEN_STATUSES.includes(status);
}

export function isReviewStatus(value: string): value is ReviewStatus {
  return (REVIEW_STATUSES as readonly string[]).includes(value);
}

/** The status after `action`, or a `conflict` error naming both. */
export function nextStatus(status: ReviewStatus, action: ReviewAction, context: Record<string, unknown> = {}): ReviewStatus {
  const next = TRANSITIONS[status][action];
  if (next === null) {
    if (!isOpen(status)) {
      throw new SynclineError('conflict', `the review is already ${status}; a decided review does not change (a new schema opens a new review)`, { ...context, status, action });
    }
    const hint = status === 'queued' && (action === 'approve' || action === 'reject') ? '; claim it first' : '';
    throw new SynclineError('conflict', `cannot ${action} a review that is ${status}${hint}`, { ...context, status, action });
  }
  return next;
}

/**
 * Refuses an approve, reject or release that quotes a version other than the
 * current one: someone else claimed the review since, or the caller's view of it
 * is stale. Every transition bumps the version.
 */
export function checkVersion(current: number, quoted: number, context: Record<string, unknown> = {}): void {
  if (current !== quoted) {
    throw new SynclineError('stale_version', `the review is at action version ${current}, not ${quoted}; show it again and retry`, { ...context, action_version: current });
  }
}
