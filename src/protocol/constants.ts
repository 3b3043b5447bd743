/**
 * Every route, header, topic and limit of the wire protocol. Device and cloud
 * import these; no other file spells a route or header.
 *
 * Row batch format history:
 * - 1: one table per batch, positional rows aligned with schema.columns, tagged values.
 */
export const ROW_BATCH_FORMAT_VERSION = 1;
/** Telemetry batches (telemetry-batch.ts): 1: one table, cursor-numbered rows, optional time column. */
export const TELEMETRY_BATCH_FORMAT_VERSION = 1;

export const Routes = {
  health: '/healthz',
  rowBatch: '/v1/sync/rows/batch',
  telemetryBatch: '/v1/sync/telemetry/batch',
  /** Admin: time-bucketed values of one point of one device. */
  telemetryQuery: '/v1/telemetry/query',
  /** Admin: the latest value of every point of a device. */
  telemetryLatest: '/v1/telemetry/latest',
  /** Admin: telemetry tables and their column mappings (pending ones wait for a review). */
  telemetryMappings: '/v1/telemetry/mappings',
  telemetryMappingApprove: '/v1/telemetry/mappings/:id/approve',
  lineages: '/v1/lineages',
  lineage: '/v1/lineages/:id',
  mirrorRows: '/v1/lineages/:id/mirror-rows',
  devices: '/v1/admin/devices',
  device: '/v1/admin/devices/:id',
  deviceRevoke: '/v1/admin/devices/:id/revoke',
  /** Operator: pause, or resume, every lineage of a device (flow control, as for one lineage). */
  devicePause: '/v1/admin/devices/:id/pause',
  deviceResume: '/v1/admin/devices/:id/resume',
  // Schema governance: reviews, staged rows, replays, the audit log, admin tokens and project settings.
  schemaReviews: '/v1/schema-reviews',
  schemaReview: '/v1/schema-reviews/:id',
  schemaReviewClaim: '/v1/schema-reviews/:id/claim',
  schemaReviewRelease: '/v1/schema-reviews/:id/release',
  schemaReviewApprove: '/v1/schema-reviews/:id/approve',
  schemaReviewReject: '/v1/schema-reviews/:id/reject',
  stagedRows: '/v1/lineages/:id/staged-rows',
  purgeStaged: '/v1/lineages/:id/purge-staged',
  lineageResume: '/v1/lineages/:id/resume',
  /** Operator: tell the lineage's device to stop sending it (buffered on the device) until resumed. */
  lineagePause: '/v1/lineages/:id/pause',
  lineageRetryRejected: '/v1/lineages/:id/retry-rejected',
  lineageReplay: '/v1/lineages/:id/replay',
  audit: '/v1/audit',
  adminTokens: '/v1/admin/tokens',
  adminTokenRevoke: '/v1/admin/tokens/:id/revoke',
  projects: '/v1/admin/projects',
  projectSettings: '/v1/admin/projects/:id/settings',
  // Flow control (backpressure, circuit breaker) and the MQTT broker's configuration.
  /** Device: control messages not yet acked (an HTTP device polls this while a table is paused). */
  syncControls: '/v1/sync/controls',
  /** Device: confirms a control message by its control_id. */
  syncControlsAck: '/v1/sync/controls/ack',
  lineageFlow: '/v1/lineages/:id/flow',
  lineageResetMaterialization: '/v1/lineages/:id/reset-materialization',
  /** Admin: Mosquitto password and ACL files enforcing the embedded broker's rules. */
  mqttBrokerConfig: '/v1/admin/mqtt/broker-config',
  /** Admin: counters of the MQTT front door (denied publishes, refused connections, batches). */
  mqttStats: '/v1/admin/mqtt/stats',
  // Operating: Prometheus metrics, the OpenAPI document, the web console.
  metrics: '/metrics',
  openapi: '/openapi.json',
  console: '/console',
  consoleAsset: '/console/*',
  /** Admin: who the presented token is (label and role); the console's sign-in. */
  whoami: '/v1/admin/whoami',
  /** Admin: live figures (ingest rate, ack latency, staged rows) as server-sent events. */
  live: '/v1/admin/live',
  /** Admin: two-way sync scopes, sources, recent bundles, counters and snapshots. */
  twowayOverview: '/v1/admin/twoway',
} as const;

export const Headers = {
  authorization: 'authorization',
  contentEncoding: 'content-encoding',
  contentLength: 'content-length',
  contentType: 'content-type',
  /** Makes an operator's approve or reject safe to retry: the same key gets the first answer. */
  idempotencyKey: 'idempotency-key',
} as const;

/** Defaults for the device publisher; all configurable. */
export const PublisherDefaults = {
  maxBatchBytes: 512 * 1024,
  maxBatchRows: 4096,
  flushIntervalMs: 5000,
  /** Bodies smaller than this are sent uncompressed: gzip would not pay for its header. */
  compressAboveBytes: 1024,
  retryBaseMs: 250,
  retryMaxMs: 30_000,
  requestTimeoutMs: 30_000,
} as const;

/** The most rows the server accepts in one batch (devices default to 4,096). */
export const SERVER_MAX_ROWS_PER_BATCH = 10_000;
/** The largest request body the server accepts, after decompression. */
export const SERVER_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

/** Prefix of Syncline's own tables and columns, on the device and in the mirrors. */
export const RESERVED_PREFIX = '_syncline_';

/** PostgreSQL truncates identifiers beyond this many bytes; longer names are refused. */
export const MAX_IDENTIFIER_BYTES = 63;

/**
 * Default ports. The embedded MQTT broker tries the standard 1883 first and, when
 * that is taken (often by a Mosquitto already on the host), falls back to 18830
 * and says so; an explicit --mqtt-port never falls back.
 */
export const DefaultPorts = {
  http: 8787,
  mqtt: 1883,
  mqttFallback: 18830,
} as const;
