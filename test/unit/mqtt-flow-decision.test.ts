import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { decideFlow, flowLimits, type FlowAction, type FlowRecord } from '../../src/cloud/flow-control/flow-decision.js';

const LIMITS = flowLimits({ maxStagedRows: 1000, maxStagedBytes: 1_000_000, breakerThreshold: 5 });

const sending = (over: Partial<FlowRecord> = {}): FlowRecord => ({ device_state: 'sending', pause_reason: null, staged_rows: 0, staged_bytes: 0, consecutive_failures: 0, operator_override: false, ...over });
const paused = (reason: 'volume_backpressure' | 'circuit_breaker', over: Partial<FlowRecord> = {}): FlowRecord => ({ ...sending(over), device_state: 'paused', pause_reason: reason });

const flowRecord: fc.Arbitrary<FlowRecord> = fc
  .record({
    state: fc.constantFrom('sending', 'volume_backpressure', 'circuit_breaker'),
    staged_rows: fc.integer({ min: 0, max: 2000 }),
    staged_bytes: fc.integer({ min: 0, max: 2_000_000 }),
    consecutive_failures: fc.integer({ min: 0, max: 8 }),
    operator_override: fc.boolean(),
  })
  .map(({ state, ...rest }) => (state === 'sending' ? sending(rest) : paused(state, rest)));

/** Applies an action the way flow-state.ts does, for the model test. */
function apply(flow: FlowRecord, action: FlowAction): FlowRecord {
  switch (action.kind) {
    case 'none':
      return flow;
    case 'clear_override':
      return { ...flow, operator_override: false };
    case 'relabel':
      return { ...flow, pause_reason: action.reason };
    case 'pause':
      return { ...flow, device_state: 'paused', pause_reason: action.reason, operator_override: false };
    case 'resume':
      return { ...flow, device_state: 'sending', pause_reason: null };
  }
}

describe('flow decisions', () => {
  test('over the cap (rows or bytes) pauses for volume; at the cap does not', () => {
    assert.deepEqual(decideFlow(sending({ staged_rows: 1001 }), LIMITS), { kind: 'pause', reason: 'volume_backpressure' });
    assert.deepEqual(decideFlow(sending({ staged_bytes: 1_000_001 }), LIMITS), { kind: 'pause', reason: 'volume_backpressure' });
    assert.deepEqual(decideFlow(sending({ staged_rows: 1000, staged_bytes: 1_000_000 }), LIMITS), { kind: 'none' });
  });

  test('resumes only when rows and bytes are both below 80% of their caps', () => {
    assert.deepEqual(decideFlow(paused('volume_backpressure', { staged_rows: 800 }), LIMITS), { kind: 'none' });
    assert.deepEqual(decideFlow(paused('volume_backpressure', { staged_rows: 799, staged_bytes: 800_000 }), LIMITS), { kind: 'none' });
    assert.deepEqual(decideFlow(paused('volume_backpressure', { staged_rows: 799, staged_bytes: 799_999 }), LIMITS), { kind: 'resume', reason: 'backlog_drained' });
  });

  test('the breaker opens at the threshold and wins over volume; closing it resumes unless the backlog is over the cap', () => {
    assert.deepEqual(decideFlow(sending({ consecutive_failures: 4 }), LIMITS), { kind: 'none' });
    assert.deepEqual(decideFlow(sending({ consecutive_failures: 5, staged_rows: 5000 }), LIMITS), { kind: 'pause', reason: 'circuit_breaker' });
    assert.deepEqual(decideFlow(paused('volume_backpressure', { consecutive_failures: 5 }), LIMITS), { kind: 'relabel', reason: 'circuit_breaker' });
    assert.deepEqual(decideFlow(paused('circuit_breaker', { consecutive_failures: 0 }), LIMITS), { kind: 'resume', reason: 'materialization_reset' });
    assert.deepEqual(decideFlow(paused('circuit_breaker', { consecutive_failures: 0, staged_rows: 1001 }), LIMITS), { kind: 'relabel', reason: 'volume_backpressure' });
  });

  test('an operator override keeps a device sending over the cap until the backlog drained below the resume mark', () => {
    assert.deepEqual(decideFlow(sending({ staged_rows: 5000, operator_override: true }), LIMITS), { kind: 'none' });
    assert.deepEqual(decideFlow(sending({ staged_rows: 900, operator_override: true }), LIMITS), { kind: 'none' });
    assert.deepEqual(decideFlow(sending({ staged_rows: 10, operator_override: true }), LIMITS), { kind: 'clear_override' });
    assert.deepEqual(decideFlow(sending({ staged_rows: 5000, operator_override: true, consecutive_failures: 5 }), LIMITS), { kind: 'pause', reason: 'circuit_breaker' });
  });

  test('settled: applying the decided action leads to a state that needs nothing more', () => {
    fc.assert(
      fc.property(flowRecord, (flow) => {
        let state = flow;
        for (let step = 0; step < 3; step++) state = apply(state, decideFlow(state, LIMITS));
        assert.deepEqual(decideFlow(state, LIMITS), { kind: 'none' });
      }),
    );
  });

  test('invariants: a paused device over the cap or with the breaker open is never resumed; a drained, healthy one is never paused', () => {
    fc.assert(
      fc.property(flowRecord, (flow) => {
        const action = decideFlow(flow, LIMITS);
        const over = flow.staged_rows > 1000 || flow.staged_bytes > 1_000_000;
        const drained = flow.staged_rows < 800 && flow.staged_bytes < 800_000;
        if (action.kind === 'resume') assert.ok(!over && flow.consecutive_failures < 5);
        if (action.kind === 'resume' && action.reason === 'backlog_drained') assert.ok(drained);
        if (action.kind === 'pause') assert.ok(over || flow.consecutive_failures >= 5);
        if (flow.device_state === 'paused') assert.notEqual(action.kind, 'pause');
      }),
    );
  });

  test('limits are checked', () => {
    assert.throws(() => flowLimits({ maxStagedRows: 0 }), /positive/);
    assert.throws(() => flowLimits({ resumeRatio: 1 }), /between 0 and 1/);
    assert.deepEqual(flowLimits(), { maxStagedRows: 100_000, maxStagedBytes: 1024 ** 3, resumeRatio: 0.8, breakerThreshold: 5 });
  });
});
