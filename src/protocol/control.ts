import { z } from 'zod';
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

const uuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
const base = {
  control_id: uuid,
  lineage_id: uuid,
  source_table: z.string().min(1).max(1000),
  /** The journal epoch `server_watermark` belongs to; null before the lineage took any batch. */
  journal_epoch: z.string().max(64).nullable(),
  /** The highest seq the cloud holds for the lineage (in `journal_epoch`); the device resends from the next one. */
  server_watermark: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
  issued_at: z.string().max(64),
};

/** A pause or resume control as the device parses it (also the answers' description in OpenAPI). */
export const controlSchema = z.discriminatedUnion('type', [
  z.object({ ...base, type: z.literal('pause_lineage'), reason: z.enum(PAUSE_REASONS as [PauseReason, ...PauseReason[]]) }),
  z.object({ ...base, type: z.literal('resume_lineage'), reason: z.enum(RESUME_REASONS as [ResumeReason, ...ResumeReason[]]) }),
]);
export type ControlMessage = z.infer<typeof controlSchema>;
export type PauseLineage = Extract<ControlMessage, { type: 'pause_lineage' }>;
export type ResumeLineage = Extract<ControlMessage, { type: 'resume_lineage' }>;

/** The cloud's answer to a batch, sent only after the batch is durably applied or staged. */
export const batchAckSchema = z.object({
  batch_id: z.string(),
  status: z.enum(['accepted', 'duplicate']),
  lineage_id: z.string(),
  /** The highest seq the cloud holds for this lineage in this epoch. */
  last_seq: z.number(),
  rows_applied: z.number(),
  rows_skipped: z.number(),
  /** Control messages the device has not acked yet (any of its tables); how an HTTP device learns of pause and resume. */
  controls: z.array(controlSchema).optional(),
  /**
   * Telemetry: this cloud honours `after_seq`, so the device may keep several of a
   * table's batches in flight. A device sends one at a time until an ack says so:
   * a cloud from before pipelining ignores `after_seq` and, given batches out of
   * order, would store the later one and skip the earlier one's rows as held.
   */
  in_order: z.literal(true).optional(),
});
export type BatchAck = z.infer<typeof batchAckSchema>;

/**
 * A batch ack as the device reads it, over HTTP and in MQTT's batch_ack. Its
 * controls are left unread here: the control handler reads them one by one and
 * skips, with a warning, one it cannot read (a newer cloud's reason), where
 * refusing the whole ack would have the batch sent again for ever.
 */
export const receivedBatchAckSchema = batchAckSchema.extend({ controls: z.array(z.unknown()).optional() });
export type ReceivedBatchAck = z.infer<typeof receivedBatchAckSchema>;

/** The answer to GET /v1/sync/controls. */
export const controlsAnswerSchema = z.object({ controls: z.array(controlSchema) });
/** The answer to POST /v1/sync/controls/ack. */
export const controlAckAnswerSchema = z.object({ control_id: z.string(), recorded: z.boolean() });

/** The cloud's answer to a batch that came over MQTT (HTTP answers in the response body). */
const batchAckMessageSchema = z.object({ type: z.literal('batch_ack'), ack: receivedBatchAckSchema });
export type BatchAckMessage = z.infer<typeof batchAckMessageSchema>;

/** A batch the cloud refused; `status` and `error` are what HTTP would have answered. Null batch_id: the payload could not be read at all. */
const batchErrorMessageSchema = z.object({ type: z.literal('batch_error'), batch_id: z.string().nullable(), error: z.string(), message: z.string(), status: z.number().int() });
export type BatchErrorMessage = z.infer<typeof batchErrorMessageSchema>;

const downlinkSchema = z.union([controlSchema, batchAckMessageSchema, batchErrorMessageSchema]);
export type DownlinkMessage = z.infer<typeof downlinkSchema>;

/** `applied`: the device acted on it; `stale`: a newer control for the table was applied already, this one changed nothing. */
export const controlAckSchema = z.strictObject({ control_id: uuid, status: z.enum(['applied', 'stale']) });
export type ControlAck = z.infer<typeof controlAckSchema>;

function parseWith<T>(schema: z.ZodType<T>, input: unknown, what: string): T {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.join('.') || '(root)';
  throw new SynclineError('invalid_request', `${what}: ${field}: ${issue?.message ?? 'invalid'}`, { field });
}

export function parseControlMessage(input: unknown): ControlMessage {
  return parseWith(controlSchema, input, 'control message');
}

export function parseDownlink(input: unknown): DownlinkMessage {
  return parseWith(downlinkSchema, input, 'downlink message');
}

export function parseControlAck(input: unknown): ControlAck {
  return parseWith(controlAckSchema, input, 'control ack');
}
