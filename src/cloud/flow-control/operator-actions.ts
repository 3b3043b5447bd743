import type { ControlMessage } from '../../protocol/control.js';
import type { Queryable } from '../store/store.js';
import { issueControl } from './controls.js';
import { applyFlowAction, lockFlow, type LockedFlow } from './flow-state.js';
import { decideFlow, type FlowLimits } from './flow-decision.js';

/**
 * Operator actions on flow control. Each runs inside the route's transaction and
 * composes with the governance action of the same route (passed in, so flow
 * control needs no knowledge of reviews and replays).
 */

export interface DeviceFlowResult {
  device_state: 'sending' | 'paused';
  /** The control issued to the device by this action, if any. */
  control_id: string | null;
}

/** Governance causes the lineage's own resume handles; a schema-review pause is decided by the review, not by resume. */
const GOVERNANCE_RESUMABLE = new Set(['schema_rejected', 'materialization_failed']);

/**
 * POST /v1/lineages/:id/resume: lets a device that flow control paused send
 * again, even over the cap (the cap applies again once the backlog drained below
 * the resume mark), and resumes the lineage itself when governance can. With
 * neither to do, the governance resume answers (its conflict explains why).
 */
export async function resumeWithDevice<T extends { lineage_id: string; replay: unknown }>(
  tx: Queryable,
  lineageId: string,
  governanceResume: () => Promise<T>,
): Promise<(T | { lineage_id: string; replay: null }) & { device: DeviceFlowResult }> {
  const locked = await lockFlow(tx, lineageId);
  const devicePaused = locked.flow.device_state === 'paused';
  const lineageResumable = locked.lineage.pause_cause !== null && GOVERNANCE_RESUMABLE.has(locked.lineage.pause_cause);
  const control = devicePaused ? await resumeDeviceFlow(tx, locked) : undefined;
  const governance = lineageResumable || !devicePaused ? await governanceResume() : { lineage_id: locked.lineage.id, replay: null };
  return { ...governance, device: { device_state: 'sending', control_id: control?.control_id ?? null } };
}

/** Lets the device of a locked, device-paused lineage send again, over the cap if need be, and tells it so. */
async function resumeDeviceFlow(tx: Queryable, locked: LockedFlow): Promise<ControlMessage> {
  await tx.query(
    `UPDATE edge_lineage_flow SET device_state = 'sending', pause_reason = NULL, consecutive_failures = 0, operator_override = true, changed_at = now() WHERE lineage_id = $1`,
    [locked.lineage.id],
  );
  return issueControl(tx, locked.lineage, { type: 'resume_lineage', reason: 'operator_resume' });
}

/**
 * POST /v1/lineages/:id/pause: tells the device to stop sending the lineage and
 * buffer it locally until an operator resumes it (flow control leaves an
 * operator's pause alone). A lineage already paused by backpressure or the
 * breaker is relabelled, so draining its backlog no longer resumes it; pausing
 * twice changes nothing and issues no second control.
 */
export async function pauseByOperator(tx: Queryable, lineageId: string): Promise<DeviceFlowResult> {
  const locked = await lockFlow(tx, lineageId);
  if (locked.flow.device_state === 'paused') {
    if (locked.flow.pause_reason !== 'operator_pause') await applyFlowAction(tx, locked, { kind: 'relabel', reason: 'operator_pause' });
    return { device_state: 'paused', control_id: null };
  }
  const control = await applyFlowAction(tx, locked, { kind: 'pause', reason: 'operator_pause' });
  return { device_state: 'paused', control_id: control?.control_id ?? null };
}

/** Resumes the device side only (for a whole device): governance pauses stay as they are. Not paused: nothing to do. */
export async function resumeDeviceByOperator(tx: Queryable, lineageId: string): Promise<DeviceFlowResult> {
  const locked = await lockFlow(tx, lineageId);
  if (locked.flow.device_state !== 'paused') return { device_state: 'sending', control_id: null };
  const control = await resumeDeviceFlow(tx, locked);
  return { device_state: 'sending', control_id: control.control_id };
}

/**
 * POST /v1/lineages/:id/reset-materialization: closes the circuit breaker (its
 * failure count back to zero), replays what a materialization failure staged when
 * the lineage is paused for it, and lets the device send again unless the backlog
 * is over the cap.
 */
export async function resetMaterialization<T extends object>(
  tx: Queryable,
  lineageId: string,
  limits: FlowLimits,
  governanceResume: () => Promise<T>,
): Promise<{ lineage_id: string; governance: T | null; device: DeviceFlowResult }> {
  const locked = await lockFlow(tx, lineageId);
  await tx.query('UPDATE edge_lineage_flow SET consecutive_failures = 0, changed_at = now() WHERE lineage_id = $1', [lineageId]);
  const governance = locked.lineage.pause_cause === 'materialization_failed' ? await governanceResume() : null;
  const flow = { ...locked.flow, consecutive_failures: 0 };
  const action = decideFlow(flow, limits);
  const control = await applyFlowAction(tx, { ...locked, flow }, action);
  const paused = action.kind === 'resume' ? false : flow.device_state === 'paused' || action.kind === 'pause';
  return { lineage_id: locked.lineage.id, governance, device: { device_state: paused ? 'paused' : 'sending', control_id: control?.control_id ?? null } };
}
