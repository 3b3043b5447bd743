import type { Logger } from 'pino';
import { SERVER_BODY_LIMIT_BYTES } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { FlowController } from './flow-control/flow-controller.js';
import { flowLimits, type FlowLimits } from './flow-control/flow-decision.js';
import { governancePolicy, type AdditivePolicy, type GovernancePolicy, type SchemaPolicy } from './governance/policy.js';
import { reconcileReviews } from './governance/reconcile.js';
import { retryRejectedAfter } from './governance/replay-intents.js';
import { ReplayWorker } from './governance/replay-worker.js';
import { convertLegacyMirrors } from './ingest/mirror-digest-conversion.js';
import type { AppOptions } from './http/build-app.js';
import { ActivityRecorder } from './metrics/activity-recorder.js';
import type { MqttStats } from './mqtt/mqtt-stats.js';
import type { SharedSyncConfig } from './shared/declarations.js';
import { startSharedSync, type SharedSync } from './shared/shared-service.js';
import { migrate } from './store/migrations.js';
import type { Store } from './store/store.js';
import { GroupCommitter } from './ingest/group-commit.js';
import { TelemetryService } from './telemetry/telemetry-service.js';

/** What the standalone server and the Fastify plugin share: the store, governance, workers and two-way sync. */
export interface CloudServiceOptions {
  /** The caller opens and closes the store; Syncline only uses it (and migrates it on start). */
  store: Store;
  adminToken: string;
  /** `review` (production default): every new schema waits for an operator. `auto`: first schemas are mirrored as they come. */
  schemaPolicy: SchemaPolicy;
  /** Whether added nullable columns are followed without a review; default `review` under `review`, `allow` under `auto`. */
  additivePolicy?: AdditivePolicy;
  logger: Logger;
  /** Largest request body after decompression; default SERVER_BODY_LIMIT_BYTES. */
  bodyLimit?: number;
  /** Staged-row replay after approvals: rows per transaction and how often to look for work from other processes. */
  replay?: { chunkRows?: number; pollMs?: number };
  /** Backpressure caps and circuit breaker threshold, and how often flow control looks and resends controls. */
  flow?: Partial<FlowLimits> & { intervalMs?: number; resendMs?: number };
  /** Two-way sync of shared tables; off when absent. The tables are provisioned (or checked) before routes are served. */
  shared?: SharedSyncConfig;
  /** Telemetry: days of values kept (0, the default, keeps everything). */
  telemetryRetentionDays?: number;
  /** How often device last-seen times, two-way pull watermarks and two-way counters are written (default ACTIVITY_FLUSH_MS). */
  activityFlushMs?: number;
}

export interface CloudServices {
  policy: GovernancePolicy;
  bodyLimit: number;
  flow: FlowController;
  shared: SharedSync | undefined;
  telemetry: TelemetryService;
  /** Group commit of the batches both front doors take (one per server process). */
  group: GroupCommitter;
  /** Device activity (last seen, transport, pull watermarks, two-way counters), written in the background. */
  activity: ActivityRecorder;
  /** Options of the HTTP routes, wired to these workers (the MQTT stats come from whoever runs a broker). */
  routes(mqttStats?: () => Promise<MqttStats | undefined>): AppOptions;
  /** Runs the replay worker, flow control, telemetry maintenance, the conversion of legacy mirrors to digest keys and the activity writer until the signal aborts. */
  run(signal: AbortSignal): Promise<void>;
}

const MIN_ADMIN_TOKEN_LENGTH = 16;

/** Validates the options, migrates the store, reconciles reviews and provisions shared tables; nothing runs until run(). */
export async function prepareCloud(options: CloudServiceOptions, sharedOptions: { jwtOptional?: boolean } = {}): Promise<CloudServices> {
  if (options.adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
    throw new SynclineError('invalid_config', `the admin token must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`);
  }
  const policy = governancePolicy(options.schemaPolicy, options.additivePolicy);
  const bodyLimit = options.bodyLimit ?? SERVER_BODY_LIMIT_BYTES;
  if (!Number.isInteger(bodyLimit) || bodyLimit < 1024) throw new SynclineError('invalid_config', 'the body limit must be an integer of at least 1024 bytes');
  const chunkRows = options.replay?.chunkRows;
  if (chunkRows !== undefined && (!Number.isInteger(chunkRows) || chunkRows < 1)) throw new SynclineError('invalid_config', 'replay chunkRows must be a positive integer');
  // Idempotent: a store opened without migrations is brought up to date here.
  await migrate(options.store, { logger: options.logger });
  const governanceLog = options.logger.child({ component: 'governance' });
  await reconcileReviews(options.store, governanceLog);
  const worker = new ReplayWorker({
    store: options.store,
    logger: governanceLog,
    policy,
    ...(chunkRows !== undefined ? { chunkRows } : {}),
    ...(options.replay?.pollMs !== undefined ? { pollMs: options.replay.pollMs } : {}),
  });
  const { intervalMs: flowIntervalMs, resendMs, ...limits } = options.flow ?? {};
  const flow = new FlowController({
    store: options.store,
    logger: options.logger.child({ component: 'flow-control' }),
    limits: flowLimits(limits),
    ...(flowIntervalMs !== undefined ? { intervalMs: flowIntervalMs } : {}),
    ...(resendMs !== undefined ? { resendMs } : {}),
  });
  const shared = options.shared ? await startSharedSync(options.store, options.shared, options.logger, sharedOptions) : undefined;
  const group = new GroupCommitter(options.store, { logger: options.logger.child({ component: 'ingest' }) });
  const telemetry = new TelemetryService({ store: options.store, policy, logger: options.logger, retentionDays: options.telemetryRetentionDays ?? 0, group });
  await telemetry.maintenance.once();
  const activity = new ActivityRecorder({ db: options.store, logger: options.logger.child({ component: 'activity' }), ...(options.activityFlushMs !== undefined ? { flushMs: options.activityFlushMs } : {}) });
  return {
    policy,
    bodyLimit,
    flow,
    shared,
    telemetry,
    group,
    activity,
    routes: (mqttStats) => ({
      telemetry,
      group,
      activity,
      ...(shared ? { shared } : {}),
      store: options.store,
      adminToken: options.adminToken,
      bodyLimit,
      logger: options.logger,
      policy,
      onReplayRequested: () => {
        worker.wake();
        flow.wake();
      },
      flow: { limits: flow.limits, ...(mqttStats ? { mqttStats } : {}), onChange: () => flow.wake(), onIngested: () => flow.wake() },
    }),
    run: async (signal) => {
      // A converted mirror takes keys its old index refused: those rows are tried again at once.
      const conversions = convertLegacyMirrors(options.store, { logger: governanceLog, signal, onConverted: async (ids) => retryRejectedAfter(options.store, ids, governanceLog, () => worker.wake()) });
      await Promise.all([worker.run(signal), flow.run(signal), telemetry.maintenance.run(signal), conversions, activity.run(signal)]);
    },
  };
}
