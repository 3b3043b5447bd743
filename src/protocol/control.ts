import { z } from 'zod';
import type { BatchAck } from './batch.js';
import { SynclineError } from './errors.js';

/**
 * Downlink messages (cloud → device) and the device's control acks. Over MQTT
 * they travel on `{root}/sync/control` and `{root}/sync/control/ack`; over HTTP
 * pending controls ride on every batch ack (`controls`) and on
 * GET /v1/sync/controls, and acks go to POST /v1/sync/controls/ack.
 *
 * A control is about one lineage (device, source table). Control ids are UUIDv7,
 * so a device applies a table's controls in id order and ignores an older one
 * that arrives late (a redelivery overtaken by a newer control).
 */

/** Why the cloud asks a device to stop sending a table and buffer it locally (`operator_pause`: until an operator resumes it). */
export type PauseReason = 'volume_backpressure' | 'circuit_breaker' | 'operator_pause';
/** Why the cloud lets it go again. */
export type ResumeReason = 'backlog_drained' | 'operator_resume' | 'materialization_reset';

export const PAUSE_REASONS: readonly PauseReason[] = ['volume_backpressure', 'circuit_breaker', 'operator_pause'];
export const RESUME_REASONS: readonly ResumeReason[] = ['backlog_drained', 'operator_resume', 'materialization_reset'];

interface ControlBase {
  control_id: string;
  lineage_id: string;
  source_table: string;
  /** The journal epoch `server_watermark` belongs to; null before the lineage took any batch. */
  journal_epoch: string | null;
  /** The highest seq the cloud holds for the lineage (in `journal_epoch`); the device resends from the next one. */
  server_watermark: number;
  issued_at: string;
}

export interface PauseLineage extends ControlBase {
  type: 'pause_lineage';
  reason: PauseReason;
}

export interface ResumeLineage extends ControlBase {
  type: 'resume_lineage';
  reason: ResumeReason;
}

export type ControlMessage = PauseLineage | ResumeLineage;

/** The cloud's answer to a batch that came over MQTT (HTTP answers in the response body). */
export interface BatchAckMessage {
  type: 'batch_ack';
  ack: BatchAck;
}

/** A batch the cloud refused; `status` and `error` are what HTTP would have answered. Null batch_id: the payload could not be read at all. */
export interface BatchErrorMessage {
  type: 'batch_error';
  batch_id: string | null;
  error: string;
  message: string;
  status: number;
}

export type DownlinkMessage = ControlMessage | BatchAckMessage | BatchErrorMessage;

/** `applied`: the device acted on it; `stale`: a newer control for the table was applied already, this one changed nothing. */
export interface ControlAck {
  control_id: string;
  status: 'applied' | 'stale';
}

const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
const base = {
  control_id: uuid,
  lineage_id: uuid,
  source_table: z.string().min(1).max(1000),
  journal_epoch: z.string().max(64).nullable(),
  server_watermark: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  issued_at: z.string().max(64),
};

/** A pause or resume control as the device parses it (also the answers' description in OpenAPI). */
export const controlSchema = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('pause_lineage'), reason: z.enum(PAUSE_REASONS as [PauseReason, ...PauseReason[]]) }),
  z.object({ ...base, type: z.literal('resume_lineage'), reason: z.enum(RESUME_REASONS as [ResumeReason, ...ResumeReason[]]) }),
]);

/** A batch ack as the device parses it, over HTTP and in MQTT's batch_ack. */
export const batchAckSchema = z.object({
  batch_id: z.string(),
  status: z.enum(['accepted', 'duplicate']),
  lineage_id: z.string(),
  last_seq: z.number(),
  rows_applied: z.number(),
  rows_skipped: z.number(),
  controls: z.array(controlSchema).optional(),
  in_order: z.literal(true).optional(),
});

const downlinkSchema = z.union([
  controlSchema,
  z.object({ type: z.literal('batch_ack'), ack: batchAckSchema }),
  z.object({ type: z.literal('batch_error'), batch_id: z.string().nullable(), error: z.string(), message: z.string(), status: z.number().int() }),
]);

const controlAckSchema = z.strictObject({ control_id: uuid, status: z.enum(['applied', 'stale']) });

function parseWith<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.join('.') || '(root)';
  throw new SynclineError('invalid_request', `${what}: ${field}: ${issue?.message ?? 'invalid'}`, { field });
}

export function parseControlMessage(input: unknown): ControlMessage {
  return parseWith(controlSchema, input, 'control message') as ControlMessage;
}

export function parseDownlink(input: unknown): DownlinkMessage {
  return parseWith(downlinkSchema, input, 'downlink message') as DownlinkMessage;
}

export function parseControlAck(input: unknown): ControlAck {
  return parseWith(controlAckSchema, input, 'control ack');
}
