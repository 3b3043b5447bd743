import type { PauseReason, ResumeReason } from '../../protocol/control.js';
import { SynclineError } from '../../protocol/errors.js';

/**
 * What the cloud tells a device about one lineage, decided from counters alone
 * (pure, so the transition table below is tested on its own). Independent of the
 * lineage's governance status: a schema-review pause keeps the device sending and
 * the cloud stages; this decides when the device itself must stop.
 */

export interface FlowLimits {
  /** Staged rows of one lineage above which its device is paused. */
  maxStagedRows: number;
  /** Staged bytes (key and row JSON) of one lineage above which its device is paused. */
  maxStagedBytes: number;
  /** The device resumes once rows and bytes are both below this share of their caps. */
  resumeRatio: number;
  /** Batches in a row kept out of the mirror by a permanent materialization error before the device is paused. */
  breakerThreshold: number;
}

export const DEFAULT_FLOW_LIMITS: FlowLimits = {
  maxStagedRows: 100_000,
  maxStagedBytes: 1024 ** 3,
  resumeRatio: 0.8,
  breakerThreshold: 5,
};

/** The flow row of a lineage (edge_lineage_flow). */
export interface FlowRecord {
  device_state: 'sending' | 'paused';
  pause_reason: PauseReason | null;
  staged_rows: number;
  staged_bytes: number;
  consecutive_failures: number;
  operator_override: boolean;
}

export type FlowAction =
  | { kind: 'none' }
  | { kind: 'pause'; reason: PauseReason }
  | { kind: 'resume'; reason: ResumeReason }
  /** The device stays paused, now for another reason (no new control: it already stopped). */
  | { kind: 'relabel'; reason: PauseReason }
  /** The backlog drained below the resume mark after an operator resumed over the cap: the cap applies again. */
  | { kind: 'clear_override' };

interface Conditions {
  /** The circuit breaker is open: too many failed batches in a row. */
  tripped: boolean;
  /** Rows or bytes above their cap. */
  over: boolean;
  /** Rows and bytes both below the resume mark. */
  drained: boolean;
  override: boolean;
}

type FlowStateName = 'sending' | `paused:${PauseReason}`;

const NONE: FlowAction = { kind: 'none' };

/** One entry per state; the Record type makes the compiler insist every state is handled. */
const TRANSITIONS: Record<FlowStateName, (c: Conditions) => FlowAction> = {
  sending: (c) => {
    if (c.tripped) return { kind: 'pause', reason: 'circuit_breaker' };
    if (c.over && !c.override) return { kind: 'pause', reason: 'volume_backpressure' };
    if (c.override && c.drained) return { kind: 'clear_override' };
    return NONE;
  },
  'paused:volume_backpressure': (c) => {
    if (c.tripped) return { kind: 'relabel', reason: 'circuit_breaker' };
    return c.drained ? { kind: 'resume', reason: 'backlog_drained' } : NONE;
  },
  'paused:circuit_breaker': (c) => {
    if (c.tripped) return NONE;
    return c.over ? { kind: 'relabel', reason: 'volume_backpressure' } : { kind: 'resume', reason: 'materialization_reset' };
  },
  // An operator's pause outlasts every counter: only an operator's resume ends it.
  'paused:operator_pause': () => NONE,
};

export function conditions(flow: FlowRecord, limits: FlowLimits): Conditions {
  return {
    tripped: flow.consecutive_failures >= limits.breakerThreshold,
    over: flow.staged_rows > limits.maxStagedRows || flow.staged_bytes > limits.maxStagedBytes,
    drained: flow.staged_rows < limits.maxStagedRows * limits.resumeRatio && flow.staged_bytes < limits.maxStagedBytes * limits.resumeRatio,
    override: flow.operator_override,
  };
}

export function decideFlow(flow: FlowRecord, limits: FlowLimits): FlowAction {
  const state: FlowStateName = flow.device_state === 'sending' || flow.pause_reason === null ? 'sending' : `paused:${flow.pause_reason}`;
  return TRANSITIONS[state](conditions(flow, limits));
}

/** Fills defaults and refuses limits that would pause everything or nothing by accident. */
export function flowLimits(partial: Partial<FlowLimits> = {}): FlowLimits {
  const limits = { ...DEFAULT_FLOW_LIMITS, ...partial };
  const positive = (value: number, field: string) => {
    if (!Number.isSafeInteger(value) || value < 1) throw new SynclineError('invalid_config', `${field} must be a positive integer`, { field });
  };
  positive(limits.maxStagedRows, 'maxStagedRows');
  positive(limits.maxStagedBytes, 'maxStagedBytes');
  positive(limits.breakerThreshold, 'breakerThreshold');
  if (!(limits.resumeRatio > 0 && limits.resumeRatio < 1)) throw new SynclineError('invalid_config', 'resumeRatio must be between 0 and 1', { field: 'resumeRatio' });
  return limits;
}
