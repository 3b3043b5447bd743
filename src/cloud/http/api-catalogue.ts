import { z } from 'zod';
import * as answers from '../../protocol/admin-answers.js';
import { deviceCreateBody, pauseBody, retryRejectedBody, telemetryApproveBody } from '../../protocol/admin-requests.js';
import { telemetryBatchSchema } from '../../protocol/telemetry-batch.js';
import { rowBatchSchema } from '../../protocol/batch.js';
import { controlAckSchema } from '../../protocol/control.js';
import { Routes } from '../../protocol/constants.js';
import { SharedRoutes, pushBeginSchema, pushChunkSchema } from '../../protocol/shared-sync.js';
import * as sync from '../../protocol/sync-answers.js';
import { approveBody, claimBody, projectSettingsBody, purgeBody, rejectBody, releaseBody, tokenBody } from '../governance/requests.js';
import { adminBundleSchema } from './shared-routes.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
/** Who may call: a device token, a two-way sync JWT, an admin token of at least this role, or anyone. */
export type Caller = 'device' | 'jwt' | 'viewer' | 'operator' | 'admin' | 'public';

export interface Answer {
  description: string;
  /** JSON answers; absent for answers without a body or with another content type. */
  schema?: z.ZodType;
  contentType?: string;
}

export interface RouteDoc {
  method: Method;
  url: string;
  summary: string;
  tag: string;
  caller: Caller;
  query?: z.ZodObject;
  body?: z.ZodType;
  responses: Record<number, Answer>;
}

const text = (description: string) => z.string().optional().describe(description);
const json = (description: string, schema: z.ZodType): Answer => ({ description, schema });
const ok = (schema: z.ZodType, description = 'OK'): Record<number, Answer> => ({ 200: json(description, schema) });
const pageQuery = z.object({ limit: text('page size'), after: text('`next` of the previous page') });

/** Every route of the HTTP API, with the schemas of what it takes and answers. The OpenAPI document is made from this list. */
export const API_ROUTES: readonly RouteDoc[] = [
  { method: 'GET', url: Routes.health, summary: 'Liveness, and what is down: the database (503) or the MQTT broker (200, degraded)', tag: 'operating', caller: 'public', responses: { ...ok(answers.healthAnswerSchema), 503: json('database unreachable (status degraded, with the reason), or the connection cap refused the request (error body)', z.union([answers.healthAnswerSchema, answers.errorAnswerSchema])) } },
  { method: 'GET', url: Routes.metrics, summary: 'Prometheus metrics (text format)', tag: 'operating', caller: 'viewer', responses: { 200: { description: 'Prometheus text exposition', contentType: 'text/plain; version=0.0.4' } } },
  { method: 'GET', url: Routes.openapi, summary: 'This document', tag: 'operating', caller: 'public', responses: { 200: { description: 'OpenAPI 3.1 document', contentType: 'application/json' } } },
  { method: 'GET', url: Routes.console, summary: 'The web console', tag: 'operating', caller: 'public', responses: { 200: { description: 'HTML page', contentType: 'text/html' } } },
  { method: 'GET', url: Routes.consoleAsset, summary: 'Assets of the web console', tag: 'operating', caller: 'public', responses: { 200: { description: 'script, style sheet or image' }, 404: json('no such asset', answers.errorAnswerSchema) } },
  { method: 'GET', url: Routes.live, summary: 'Live figures as server-sent events: ingest rate, ack latency, staged rows, paused lineages, open reviews', tag: 'operating', caller: 'viewer', responses: { 200: { description: '`event: figures` every second', contentType: 'text/event-stream' } } },
  { method: 'GET', url: Routes.twowayOverview, summary: 'Two-way sync: scopes, sources, recent bundles, counters, snapshots', tag: 'two-way sync', caller: 'viewer', responses: ok(answers.twowayOverviewSchema) },
  { method: 'GET', url: Routes.whoami, summary: 'Who the presented admin token is', tag: 'operating', caller: 'viewer', responses: ok(answers.whoAmISchema) },

  { method: 'POST', url: Routes.rowBatch, summary: 'Send a row batch', tag: 'device sync', caller: 'device', body: rowBatchSchema, responses: ok(sync.batchAckSchema, 'durably materialized or staged') },
  { method: 'GET', url: Routes.syncControls, summary: 'Control messages not yet acked', tag: 'device sync', caller: 'device', responses: ok(sync.controlsAnswerSchema) },
  { method: 'POST', url: Routes.syncControlsAck, summary: 'Ack a control message', tag: 'device sync', caller: 'device', body: controlAckSchema, responses: ok(sync.controlAckAnswerSchema) },

  { method: 'POST', url: Routes.devices, summary: 'Register a device (its token is shown once)', tag: 'fleet', caller: 'admin', body: deviceCreateBody, responses: { 201: json('created', answers.deviceCreatedSchema) } },
  { method: 'GET', url: Routes.devices, summary: 'List devices', tag: 'fleet', caller: 'viewer', responses: ok(answers.deviceListSchema) },
  { method: 'GET', url: Routes.device, summary: 'One device', tag: 'fleet', caller: 'viewer', responses: ok(answers.deviceSchema) },
  { method: 'POST', url: Routes.deviceRevoke, summary: 'Revoke a device token', tag: 'fleet', caller: 'admin', responses: ok(answers.deviceSchema) },
  { method: 'POST', url: Routes.devicePause, summary: 'Tell a device to stop sending every lineage (buffered on the device) until an operator resumes it (audited)', tag: 'fleet', caller: 'operator', body: pauseBody, responses: ok(answers.devicePauseAnswerSchema) },
  { method: 'POST', url: Routes.deviceResume, summary: 'Let a device send every lineage again (audited; governance pauses stay)', tag: 'fleet', caller: 'operator', responses: ok(answers.devicePauseAnswerSchema) },
  { method: 'GET', url: Routes.lineages, summary: 'List lineages (one per device and source table)', tag: 'lineages', caller: 'viewer', query: z.object({ device_id: text('only this device') }), responses: ok(answers.lineageListSchema) },
  { method: 'GET', url: Routes.lineage, summary: 'One lineage with schemas, bindings, staged count and replay', tag: 'lineages', caller: 'viewer', responses: ok(answers.lineageDetailSchema) },
  { method: 'GET', url: Routes.mirrorRows, summary: 'Mirror rows, keyset paged, values exact', tag: 'lineages', caller: 'viewer', query: pageQuery, responses: ok(answers.mirrorPageSchema) },
  { method: 'GET', url: Routes.stagedRows, summary: 'Staged rows, paged', tag: 'lineages', caller: 'viewer', query: pageQuery.extend({ schema_hash: text('only rows of this schema') }), responses: ok(answers.stagedPageSchema) },
  { method: 'POST', url: Routes.purgeStaged, summary: 'Discard staged rows (audited)', tag: 'lineages', caller: 'operator', body: purgeBody, responses: ok(answers.purgeAnswerSchema) },
  { method: 'POST', url: Routes.lineagePause, summary: 'Tell the device to stop sending this lineage (buffered on the device) until an operator resumes it (audited)', tag: 'lineages', caller: 'operator', body: pauseBody, responses: ok(answers.pauseAnswerSchema) },
  { method: 'POST', url: Routes.lineageRetryRejected, summary: 'Try the rows the mirror refused (row_rejected) again, in order, as a replay', tag: 'lineages', caller: 'operator', body: retryRejectedBody, responses: ok(answers.retryRejectedAnswerSchema) },
  { method: 'POST', url: Routes.lineageResume, summary: 'Resume a paused lineage and its device', tag: 'lineages', caller: 'operator', responses: ok(answers.resumeAnswerSchema) },
  { method: 'GET', url: Routes.lineageReplay, summary: 'Latest replay of staged rows and its progress', tag: 'lineages', caller: 'viewer', responses: ok(answers.replayAnswerSchema) },
  { method: 'GET', url: Routes.lineageFlow, summary: 'Flow control state, limits and recent controls', tag: 'lineages', caller: 'viewer', responses: ok(answers.flowAnswerSchema) },
  { method: 'POST', url: Routes.lineageResetMaterialization, summary: 'Reset the circuit breaker and replay what a failure staged', tag: 'lineages', caller: 'operator', responses: ok(answers.resetAnswerSchema) },

  { method: 'GET', url: Routes.schemaReviews, summary: 'Schema reviews by status', tag: 'schema reviews', caller: 'viewer', query: pageQuery.extend({ status: text('comma-separated statuses'), lineage_id: text('only this lineage'), device_id: text('only this device') }), responses: ok(answers.reviewListSchema) },
  { method: 'GET', url: Routes.schemaReview, summary: 'A review: columns against the mirror, diff, staged samples, history', tag: 'schema reviews', caller: 'viewer', responses: ok(answers.reviewDetailSchema) },
  { method: 'POST', url: Routes.schemaReviewClaim, summary: 'Claim a review', tag: 'schema reviews', caller: 'operator', body: claimBody, responses: ok(answers.reviewSchema) },
  { method: 'POST', url: Routes.schemaReviewRelease, summary: 'Release a claim', tag: 'schema reviews', caller: 'operator', body: releaseBody, responses: ok(answers.reviewSchema) },
  { method: 'POST', url: Routes.schemaReviewApprove, summary: 'Approve with column actions (quote the action version)', tag: 'schema reviews', caller: 'operator', body: approveBody, responses: { ...ok(answers.approveAnswerSchema), 409: json('stale action version or claimed by another', answers.errorAnswerSchema) } },
  { method: 'POST', url: Routes.schemaReviewReject, summary: 'Reject (quote the action version)', tag: 'schema reviews', caller: 'operator', body: rejectBody, responses: { ...ok(answers.rejectAnswerSchema), 409: json('stale action version', answers.errorAnswerSchema) } },
  { method: 'GET', url: Routes.audit, summary: 'Audit log, newest first', tag: 'audit', caller: 'viewer', query: z.object({ lineage_id: text('filter'), review_id: text('filter'), action: text('filter, e.g. review.approve'), actor: text('filter'), limit: text('page size'), before: text('`next` of the previous page') }), responses: ok(answers.auditPageSchema) },

  { method: 'POST', url: Routes.adminTokens, summary: 'Create a role token (shown once)', tag: 'access', caller: 'admin', body: tokenBody, responses: { 201: json('created', answers.adminTokenCreatedSchema) } },
  { method: 'GET', url: Routes.adminTokens, summary: 'List role tokens', tag: 'access', caller: 'viewer', responses: ok(answers.adminTokenListSchema) },
  { method: 'POST', url: Routes.adminTokenRevoke, summary: 'Revoke a role token', tag: 'access', caller: 'admin', responses: ok(answers.adminTokenSchema) },
  { method: 'GET', url: Routes.projects, summary: 'Projects and their settings', tag: 'access', caller: 'viewer', responses: ok(answers.projectListSchema) },
  { method: 'POST', url: Routes.projectSettings, summary: 'Set a project’s mirror coalescing', tag: 'access', caller: 'admin', body: projectSettingsBody, responses: ok(answers.projectSchema) },
  { method: 'GET', url: Routes.mqttStats, summary: 'MQTT front door counters', tag: 'operating', caller: 'viewer', responses: ok(answers.mqttStatsAnswerSchema) },
  { method: 'GET', url: Routes.mqttBrokerConfig, summary: 'Mosquitto password and ACL entries of the devices', tag: 'operating', caller: 'admin', responses: ok(answers.brokerConfigSchema) },

  { method: 'POST', url: Routes.telemetryBatch, summary: 'Send a telemetry batch', tag: 'telemetry', caller: 'device', body: telemetryBatchSchema, responses: ok(sync.batchAckSchema, 'durably stored or staged') },
  { method: 'GET', url: Routes.telemetryQuery, summary: 'One point of one device, bucketed and aggregated', tag: 'telemetry', caller: 'viewer', query: z.object({ device: text('device id'), point: text('point name'), from: text('ISO 8601 or ms'), to: text('ISO 8601 or ms'), bucket: text('e.g. 1m, 15s, 1h'), agg: text('avg, min, max, sum, count or last') }), responses: ok(answers.telemetrySeriesSchema) },
  { method: 'GET', url: Routes.telemetryLatest, summary: 'Newest value of every point of a device', tag: 'telemetry', caller: 'viewer', query: z.object({ device: text('device id') }), responses: ok(answers.telemetryLatestSchema) },
  { method: 'GET', url: Routes.telemetryMappings, summary: 'Telemetry tables and their column mappings', tag: 'telemetry', caller: 'viewer', query: z.object({ status: text('pending or approved') }), responses: ok(answers.telemetryMappingListSchema) },
  { method: 'POST', url: Routes.telemetryMappingApprove, summary: 'Approve a pending telemetry mapping (staged rows move into the store)', tag: 'telemetry', caller: 'admin', body: telemetryApproveBody, responses: ok(answers.telemetryApproveAnswerSchema) },

  { method: 'GET', url: SharedRoutes.config, summary: 'Shared-table declarations for this device', tag: 'two-way sync', caller: 'jwt', responses: ok(sync.sharedConfigAnswerSchema) },
  { method: 'POST', url: SharedRoutes.push, summary: 'Push a bundle (small ones commit at once; large ones open a chunked session)', tag: 'two-way sync', caller: 'jwt', body: pushBeginSchema, responses: { ...ok(sync.pushAnswerSchema), 409: json('conflicts', sync.pushAnswerSchema) } },
  { method: 'PUT', url: SharedRoutes.pushChunk, summary: 'Upload one chunk of a push session', tag: 'two-way sync', caller: 'jwt', body: pushChunkSchema, responses: ok(sync.pushAnswerSchema) },
  { method: 'POST', url: SharedRoutes.pushCommit, summary: 'Commit a push session', tag: 'two-way sync', caller: 'jwt', responses: { ...ok(sync.pushAnswerSchema), 409: json('conflicts', sync.pushAnswerSchema) } },
  { method: 'DELETE', url: SharedRoutes.pushSession, summary: 'Abandon a push session', tag: 'two-way sync', caller: 'jwt', responses: { 204: { description: 'abandoned' } } },
  { method: 'GET', url: SharedRoutes.pull, summary: 'Committed bundles after a watermark', tag: 'two-way sync', caller: 'jwt', query: z.object({ after: text('bundle_seq watermark'), after_ordinal: text('row ordinal within `after`'), target: text('stable head for paging'), limit: text('rows per page') }), responses: ok(sync.pullAnswerSchema) },
  { method: 'POST', url: SharedRoutes.snapshots, summary: 'Start a hydration snapshot', tag: 'two-way sync', caller: 'jwt', query: z.object({ limit: text('rows per chunk') }), responses: ok(sync.snapshotAnswerSchema) },
  { method: 'GET', url: SharedRoutes.snapshotChunk, summary: 'One snapshot chunk, or the end marker', tag: 'two-way sync', caller: 'jwt', responses: ok(sync.snapshotChunkAnswerSchema) },
  { method: 'DELETE', url: SharedRoutes.snapshot, summary: 'Drop a snapshot', tag: 'two-way sync', caller: 'jwt', responses: { 204: { description: 'dropped' } } },
  { method: 'GET', url: SharedRoutes.events, summary: 'Head changes of the scope as server-sent events', tag: 'two-way sync', caller: 'jwt', responses: { 200: { description: '`event: bundle` with the new head_seq', contentType: 'text/event-stream' } } },
  { method: 'POST', url: SharedRoutes.adminBundles, summary: 'Server-side write to a scope, committed as one bundle', tag: 'two-way sync', caller: 'operator', body: adminBundleSchema, responses: { ...ok(sync.pushAnswerSchema), 409: json('conflicts', sync.pushAnswerSchema) } },
];

const byKey = new Map(API_ROUTES.map((route) => [`${route.method} ${route.url}`, route]));

/** The declaration of a registered route (HEAD answers as its GET). */
export function routeDoc(method: string, url: string | undefined): RouteDoc | undefined {
  return url === undefined ? undefined : byKey.get(`${method === 'HEAD' ? 'GET' : method} ${url}`);
}
