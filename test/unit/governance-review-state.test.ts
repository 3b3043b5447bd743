import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { checkVersion, isOpen, nextStatus, REVIEW_STATUSES, type ReviewAction, type ReviewStatus } from '../../src/cloud/governance/review-state.js';
import { SynclineError } from '../../src/protocol/errors.js';

const ACTIONS: readonly ReviewAction[] = ['claim', 'release', 'approve', 'reject', 'supersede'];
const conflict = (e: unknown) => e instanceof SynclineError && e.code === 'conflict';

describe('review state machine', () => {
  test('the documented transitions', () => {
    assert.equal(nextStatus('queued', 'claim'), 'in_review');
    assert.equal(nextStatus('in_review', 'claim'), 'in_review');
    assert.equal(nextStatus('in_review', 'release'), 'queued');
    assert.equal(nextStatus('in_review', 'approve'), 'approved');
    assert.equal(nextStatus('in_review', 'reject'), 'rejected');
    assert.equal(nextStatus('queued', 'supersede'), 'superseded');
    assert.equal(nextStatus('in_review', 'supersede'), 'superseded');
  });

  test('deciding a queued review asks to claim it first; decided reviews are final', () => {
    assert.throws(() => nextStatus('queued', 'approve'), (e: unknown) => conflict(e) && /claim it first/.test((e as Error).message));
    for (const final of ['approved', 'rejected', 'superseded'] as const) {
      for (const action of ACTIONS) assert.throws(() => nextStatus(final, action), conflict, `${final} ${action}`);
    }
  });

  test('a stale action version is refused with the current one in the context', () => {
    checkVersion(3, 3);
    assert.throws(() => checkVersion(4, 3), (e: unknown) => e instanceof SynclineError && e.code === 'stale_version' && e.status === 409 && e.context.action_version === 4);
  });

  test('model: any action sequence matches a plain model, versions only grow, decisions are final', () => {
    type Model = { status: ReviewStatus; version: number };
    const model = (m: Model, action: ReviewAction): Model | 'refused' => {
      const open = m.status === 'queued' || m.status === 'in_review';
      if (!open) return 'refused';
      if (action === 'supersede') return { status: 'superseded', version: m.version + 1 };
      if (action === 'claim') return { status: 'in_review', version: m.version + 1 };
      if (m.status !== 'in_review') return 'refused';
      return { status: action === 'release' ? 'queued' : action === 'approve' ? 'approved' : 'rejected', version: m.version + 1 };
    };
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...ACTIONS), { maxLength: 30 }), (actions) => {
        let m: Model = { status: 'queued', version: 1 };
        let real: ReviewStatus = 'queued';
        for (const action of actions) {
          const expected = model(m, action);
          if (expected === 'refused') {
            assert.throws(() => nextStatus(real, action), conflict);
            continue;
          }
          real = nextStatus(real, action);
          assert.equal(real, expected.status);
          assert.ok(expected.version > m.version);
          m = expected;
          assert.equal(isOpen(real), real === 'queued' || real === 'in_review');
        }
      }),
      { numRuns: 300 },
    );
  });

  test('every status answers every action (the table is complete)', () => {
    for (const status of REVIEW_STATUSES) {
      for (const action of ACTIONS) {
        try {
          nextStatus(status, action);
        } catch (error) {
          assert.ok(conflict(error));
        }
      }
    }
  });
});
