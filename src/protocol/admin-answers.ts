import { z } from 'zod';
import { wireValueSchema } from './wire-value-schema.js';

/**
 * The admin API's answers as schemas: the OpenAPI document is generated from
 * them, tests validate every answer the server sends against them, and clients
 * (the web console, the admin CLI) read what they receive with them instead of casting.
 * Objects are open (unknown fields pass), so adding a field is not a breaking change.
 */

const iso = z.string().describe('ISO 8601 timestamp');
const uuid = z.string().describe('UUID');
const nullable = <T extends z.ZodType>(schema: T) => schema.nullable();

// Declared in files of their own, which the device loads without the rest of these.
export { wireValueSchema, type WireValueAnswer } from './wire-value-schema.js';
export { errorAnswerSchema } from './error-answer.js';

export const deviceSchema = z.object({
  device_id: uuid,
  org_id: z.string(),
  project_id: z.string(),
  name: z.string(),
  created_at: iso,
  revoked_at: nullable(iso),
  last_seen_at: nullable(iso).describe('last batch, control poll or MQTT connection; written every few seconds, at most every 10 s per device'),
  last_transport: nullable(z.enum(['http', 'mqtt'])).describe('the transport of that last contact'),
});
export type DeviceAnswer = z.infer<typeof deviceSchema>;
export const deviceListSchema = z.object({ devices: z.array(deviceSchema) });
export const deviceCreatedSchema = z.object({ device_id: uuid, token: z.string().describe('shown once; the server keeps its hash') });

const pauseCause = z.string().describe('schema_review, schema_rejected or materialization_failed');
export const tableKeySchema = z.object({ kind: z.enum(['primary_key', 'rowid']), columns: z.array(z.string()) });
export const columnInfoSchema = z.object({ name: z.string(), declared_type: z.string(), affinity: z.enum(['INTEGER', 'TEXT', 'REAL', 'BLOB', 'NUMERIC']), pk: z.number().int(), notnull: z.boolean(), has_default: z.boolean() });

export const replayIntentSchema = z
  .object({
    id: uuid,
    lineage_id: uuid,
    review_id: nullable(uuid),
    requested_by: z.string(),
    state: z.enum(['pending', 'done', 'blocked', 'failed']),
    after_id: z.string(),
    rows_total: z.number(),
    rows_replayed: z.number(),
    rows_kept: z.number(),
    last_error: nullable(z.string()),
    created_at: iso,
    updated_at: iso,
    finished_at: nullable(iso),
  })
  ;
export type ReplayIntentAnswer = z.infer<typeof replayIntentSchema>;

export const lineageSchema = z
  .object({
    id: uuid,
    project_id: z.string(),
    device_id: uuid,
    source_table: z.string(),
    key_kind: z.enum(['primary_key', 'rowid']),
    key_columns: z.array(z.string()),
    status: z.enum(['active', 'paused']),
    pause_cause: nullable(pauseCause),
    status_reason: nullable(z.string()),
    schema_hash: nullable(z.string()),
    journal_epoch: nullable(z.string()),
    last_seq: z.number(),
    rows_received: z.number(),
    rows_applied: z.number(),
    mirror_table: nullable(z.string()),
    created_at: iso,
    updated_at: iso,
    device_state: z.enum(['sending', 'paused']).describe('what flow control told the device'),
    device_pause_reason: nullable(z.string()).describe('volume_backpressure, circuit_breaker or operator_pause (PAUSE_REASONS of the control protocol)'),
  })
  ;
export type LineageAnswer = z.infer<typeof lineageSchema>;
export const lineageListSchema = z.object({ lineages: z.array(lineageSchema) });
export const lineageDetailSchema = lineageSchema
  .extend({
    schemas: z.array(z.object({ hash: z.string(), columns: z.unknown(), key: z.unknown(), first_seen_at: iso })),
    bindings: z.array(z.object({ source_column: z.string(), target_column: z.string(), pg_type: z.string() })),
    staged_rows: z.number(),
    staged_by_reason: z.array(z.object({ reason: z.string(), rows: z.number() })),
    replay: nullable(replayIntentSchema),
  })
  ;
export type LineageDetailAnswer = z.infer<typeof lineageDetailSchema>;

export const mirrorPageSchema = z.object({
  rows: z.array(z.record(z.string(), wireValueSchema)).describe('source columns in wire encoding, plus _syncline_* metadata'),
  next: nullable(z.string()).describe('pass as `after` for the next page'),
});
export type MirrorPageAnswer = z.infer<typeof mirrorPageSchema>;

export const reviewStatusSchema = z.enum(['queued', 'in_review', 'approved', 'rejected', 'superseded']);
export const reviewSchema = z
  .object({
    id: uuid,
    lineage_id: uuid,
    project_id: z.string(),
    schema_hash: z.string(),
    base_schema_hash: nullable(z.string()),
    origin: z.enum(['ingest', 'replay', 'defer']),
    classification: z.enum(['compatible_mapped', 'compatible_additive', 'ambiguous', 'breaking']),
    summary: z.string(),
    status: reviewStatusSchema,
    action_version: z.number().int(),
    claimed_by: nullable(z.string()),
    claimed_at: nullable(iso),
    decided_by: nullable(z.string()),
    decided_at: nullable(iso),
    decision: z.unknown(),
    superseded_by: nullable(uuid),
    created_at: iso,
    updated_at: iso,
  })
  ;
export type ReviewAnswer = z.infer<typeof reviewSchema>;
export const reviewListSchema = z.object({ reviews: z.array(reviewSchema.extend({ device_id: uuid, source_table: z.string() })), next: nullable(z.string()) });
export type ReviewListAnswer = z.infer<typeof reviewListSchema>;

const mirrorTarget = z.object({ target_column: z.string(), pg_type: z.string() });
export const reviewColumnSchema = columnInfoSchema.extend({
  state: z.enum(['bound', 'retyped', 'ignored', 'new']),
  binding: nullable(mirrorTarget),
  default_mirror: mirrorTarget,
  safe_types: z.array(z.string()).describe('mirror types a `mirror_as` may choose for this column'),
});
export type ReviewColumnAnswer = z.infer<typeof reviewColumnSchema>;

export const stagedRowSchema = z
  .object({
    id: z.number(),
    batch_id: uuid,
    journal_epoch: z.string(),
    seq: z.number(),
    op: z.string(),
    schema_hash: z.string(),
    reason: z.string(),
    detail: nullable(z.string()),
    staged_at: iso,
    pk: z.array(wireValueSchema),
    values: nullable(z.record(z.string(), wireValueSchema)),
  })
  ;
export type StagedRowAnswer = z.infer<typeof stagedRowSchema>;
const stagedSummary = z.object({
  rows: z.number(),
  by_schema: z.array(z.object({ schema_hash: z.string(), rows: z.number() })),
  by_reason: z.array(z.object({ reason: z.string(), rows: z.number() })),
});
export const stagedPageSchema = z.object({ rows: z.array(stagedRowSchema), next: nullable(z.string()) });

export const auditEntrySchema = z
  .object({ id: z.string(), at: iso, actor: z.string(), action: z.string(), project_id: nullable(z.string()), lineage_id: nullable(z.string()), review_id: nullable(z.string()), detail: z.unknown() })
  ;
export type AuditEntryAnswer = z.infer<typeof auditEntrySchema>;
export const auditPageSchema = z.object({ entries: z.array(auditEntrySchema), next: nullable(z.string()) });

export const reviewDetailSchema = reviewSchema
  .extend({
    lineage: z.object({
      id: uuid,
      device_id: uuid,
      source_table: z.string(),
      status: z.enum(['active', 'paused']),
      pause_cause: nullable(pauseCause),
      status_reason: nullable(z.string()),
      schema_hash: nullable(z.string()),
      mirror_table: nullable(z.string()),
      key: tableKeySchema,
    }),
    schema: z.object({ hash: z.string(), key: tableKeySchema, columns: z.array(reviewColumnSchema) }),
    columns_to_decide: z.array(z.string()).describe('the columns an approval must name: all of them, except in a follow-up of deferred columns, which asks only for those'),
    diff: z.object({
      bound_schema_hash: nullable(z.string()),
      added: z.array(z.string()),
      dropped: z.array(z.string()),
      retyped: z.array(z.object({ name: z.string(), from: z.string(), to: z.string() })),
      key: nullable(z.object({ from: tableKeySchema, to: tableKeySchema })),
      unclear: z.array(z.string()),
    }),
    staged: stagedSummary.extend({ samples: z.array(stagedRowSchema) }),
    replay: nullable(replayIntentSchema),
    events: z.array(auditEntrySchema),
  })
  ;
export type ReviewDetailAnswer = z.infer<typeof reviewDetailSchema>;

export const rejectAnswerSchema = z.object({ review: reviewSchema });
export const approveAnswerSchema = z.object({
  review: reviewSchema,
  mirror_table: z.string(),
  previous_mirror_table: nullable(z.string()),
  replay: nullable(replayIntentSchema),
  deferred: z.array(z.string()),
  follow_up_review: nullable(z.string()),
  also_approved: z.array(z.string()),
});
export type ApproveAnswer = z.infer<typeof approveAnswerSchema>;
export const purgeAnswerSchema = z.object({ lineage_id: uuid, purged: z.number(), by_schema: z.array(z.object({ schema_hash: z.string(), rows: z.number() })) });
const deviceFlowResult = z.object({ device_state: z.enum(['sending', 'paused']), control_id: nullable(z.string()) });
export const resumeAnswerSchema = z.object({ lineage_id: uuid, replay: nullable(replayIntentSchema), device: deviceFlowResult });
export const pauseAnswerSchema = z.object({ lineage_id: uuid, device: deviceFlowResult });
export const devicePauseAnswerSchema = z.object({
  device_id: uuid,
  lineages: z.array(z.object({ lineage_id: uuid, source_table: z.string(), device: deviceFlowResult })).describe('every lineage of the device, each with its state after the action'),
});
export type DevicePauseAnswer = z.infer<typeof devicePauseAnswerSchema>;
export const resetAnswerSchema = z.object({ lineage_id: uuid, governance: z.unknown(), device: deviceFlowResult });
export const replayAnswerSchema = z.object({ replay: nullable(replayIntentSchema) });
export const retryRejectedAnswerSchema = z.object({
  lineage_id: uuid,
  rows_rejected: z.number().describe('refused rows the retry takes'),
  replay: nullable(replayIntentSchema).describe('the replay that tries them again (follow it at GET /v1/lineages/:id/replay); null when there were none'),
});

export const adminTokenSchema = z
  .object({ id: uuid, name: z.string(), role: z.enum(['viewer', 'operator', 'admin']), created_by: z.string(), created_at: iso, revoked_at: nullable(iso) })
  ;
export const adminTokenListSchema = z.object({ tokens: z.array(adminTokenSchema) });
export const adminTokenCreatedSchema = adminTokenSchema.extend({ token: z.string().describe('shown once') });
export const projectSchema = z.object({ id: z.string(), org_id: z.string(), name: z.string(), coalescing: z.enum(['none', 'project']), created_at: iso });
export const projectListSchema = z.object({ projects: z.array(projectSchema) });

export const flowAnswerSchema = z.object({
  lineage_id: z.string(),
  limits: z.record(z.string(), z.number()),
  flow: z.object({
    device_state: z.enum(['sending', 'paused']),
    pause_reason: nullable(z.string()),
    staged_rows: z.number(),
    staged_bytes: z.number(),
    consecutive_failures: z.number(),
    operator_override: z.boolean(),
  }),
  controls: z.array(z.object({ control_id: z.string(), type: z.string(), reason: z.string(), state: z.string(), ack_status: nullable(z.string()), send_count: z.number(), created_at: iso, acked_at: nullable(iso) })),
});
export type FlowAnswer = z.infer<typeof flowAnswerSchema>;
export const mqttStatsAnswerSchema = z.object({ mqtt: nullable(z.record(z.string(), z.number())) });
export const brokerConfigSchema = z.object({
  devices: z.array(z.object({ device_id: z.string(), project_id: z.string(), password_hash: z.string() })),
  skipped: z.array(z.object({ device_id: z.string(), name: z.string(), reason: z.string() })),
});
/** `/healthz`: `ok`, or `degraded` with what is down (the database: 503; only the MQTT broker: 200). */
export const healthAnswerSchema = z.object({
  status: z.enum(['ok', 'degraded']),
  problems: z.array(z.object({ component: z.enum(['database', 'mqtt_broker']), reason: z.string(), since: z.string() })).optional(),
});

/** The console's sign-in check: who the token is. */
export const whoAmISchema = z.object({ label: z.string(), role: z.enum(['viewer', 'operator', 'admin']) });
export type WhoAmIAnswer = z.infer<typeof whoAmISchema>;

export const twowayOverviewSchema = z.object({
  scopes: z.array(z.object({ scope: z.string(), head_seq: z.string(), floor_seq: z.string(), bundles: z.number(), last_commit: nullable(iso) })),
  sources: z.array(z.object({ scope: z.string(), source: z.string(), last_seq: z.string(), bundles: z.number(), last_commit: iso })),
  recent_bundles: z.array(z.object({ scope: z.string(), bundle_seq: z.string(), source: z.string(), row_count: z.number(), committed_at: iso })),
  watermarks: z
    .array(z.object({ scope: z.string(), source: z.string(), after_seq: z.string(), pulled_seq: z.string(), head_seq: z.string(), behind: z.string(), pulled_at: iso }))
    .describe('per two-way device: the bundle it has pulled up to and how many bundles the scope head is ahead of it (written every few seconds)'),
  counters: z
    .object({ committed: z.number(), duplicate: z.number(), conflict: z.number(), conflicting_rows: z.number(), pulls: z.number(), pulled_bundles: z.number(), snapshots: z.number() })
    .describe('every server process on this database, written every few seconds'),
  snapshots: nullable(z.object({ open: z.number(), bytes: z.number() })).describe('held by this process; null without two-way sync'),
});
export type TwowayOverviewAnswer = z.infer<typeof twowayOverviewSchema>;

export const liveFiguresSchema = z.object({
  at: iso,
  batches_per_s: z.number(),
  rows_per_s: z.number(),
  ack_ms: nullable(z.number()),
  staged_rows: z.number(),
  paused_lineages: z.number(),
  open_reviews: z.number(),
});
export type LiveFiguresAnswer = z.infer<typeof liveFiguresSchema>;

const pointKind = z.enum(['numeric', 'text', 'boolean']);
/** A telemetry value as JSON keeps it exactly: a number when exact, else its text. */
const queryValue = z.union([z.number(), z.string(), z.boolean(), z.null()]);
export const telemetrySeriesSchema = z.object({
  device: z.string(),
  point: z.string(),
  kind: pointKind,
  agg: z.string(),
  bucket_seconds: z.number(),
  from: iso,
  to: iso,
  buckets: z.array(z.object({ start: iso, count: z.number(), value: queryValue })),
});
export type TelemetrySeriesAnswer = z.infer<typeof telemetrySeriesSchema>;
export const telemetryLatestSchema = z.object({ device: z.string(), points: z.array(z.object({ point: z.string(), kind: pointKind, ts: iso, value: queryValue })) });
export type TelemetryLatestAnswer = z.infer<typeof telemetryLatestSchema>;
const telemetryMappingSchema = z.object({
  id: z.string(),
  project_id: z.string(),
  source_table: z.string(),
  schema_hash: z.string(),
  columns: z.array(columnInfoSchema),
  time_column: nullable(z.string()),
  status: z.enum(['pending', 'approved']),
  points: nullable(z.array(z.object({ column: z.string(), point_id: z.number(), point: z.string(), kind: pointKind }))),
  time_unit: z.string(),
});
export const telemetryMappingListSchema = z.object({ mappings: z.array(telemetryMappingSchema.extend({ staged_rows: z.number() })) });
export const telemetryApproveAnswerSchema = z.object({ mapping: telemetryMappingSchema, replayed_rows: z.number() });
