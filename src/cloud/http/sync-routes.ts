import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { parseRowBatch } from '../../protocol/batch.js';
import { Routes } from '../../protocol/constants.js';
import { isSynclineError } from '../../protocol/errors.js';
import { VerifiedTokens } from '../auth/verified-tokens.js';
import { pendingControlsOf, withPendingControls } from '../flow-control/controls.js';
import type { GovernancePolicy } from '../governance/policy.js';
import type { GroupCommitter } from '../ingest/group-commit.js';
import { ingestRowBatch } from '../ingest/ingest-row-batch.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import { ingestTimer, rowsOf } from '../metrics/instruments.js';
import { BatchedLookup } from '../store/batched-lookup.js';
import type { Store } from '../store/store.js';
import { decodeBody, decodedBodyBytes } from './body.js';
import { deviceAuthenticator } from './device-auth.js';

export interface SyncRoutesOptions {
  store: Store;
  bodyLimit: number;
  logger: Logger;
  activity: ActivityRecorder;
  policy: GovernancePolicy;
  /** Group commit shared with the other front door; each batch alone when absent. */
  group?: GroupCommitter;
  /** Called after each ingested batch (flow control looks at the counters). */
  onIngested?: () => void;
}

/**
 * The device-facing API. The device, its org and project come from the bearer
 * token alone; whatever tenant fields a payload carries are dropped by the
 * parser. Authentication runs before the body is read, so an unknown caller
 * cannot make the server inflate or parse anything.
 */
export async function syncRoutes(app: FastifyInstance, options: SyncRoutesOptions): Promise<void> {
  const verified = await VerifiedTokens.start(options.store, options.logger);
  app.addHook('onClose', () => verified.stop());
  const auth = deviceAuthenticator(options.store, options.activity, verified);
  const controls = new BatchedLookup((deviceIds) => pendingControlsOf(options.store, deviceIds));
  const ingestOptions = { logger: options.logger, policy: options.policy, ...(options.group ? { group: options.group } : {}) };

  app.post(Routes.rowBatch, {
    onRequest: auth.onRequest,
    preParsing: decodeBody(options.bodyLimit),
    handler: async (request) => {
      const device = auth.identity(request);
      const timer = ingestTimer('http');
      try {
        const batch = parseRowBatch(request.body);
        const ack = await ingestRowBatch(options.store, device, batch, decodedBodyBytes(request), ingestOptions);
        timer.acked(ack.status, batch.rows.length, decodedBodyBytes(request));
        // Flow control: an HTTP device learns of pause and resume from its acks.
        options.onIngested?.();
        return await withPendingControls(options.store, device.device_id, ack, controls);
      } catch (error) {
        timer.refused(error, rowsOf(request.body), decodedBodyBytes(request));
        throw isSynclineError(error) ? error.withContext({ device_id: device.device_id }) : error;
      }
    },
  });
}
