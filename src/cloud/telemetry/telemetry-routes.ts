import type { FastifyInstance } from 'fastify';
import { Routes } from '../../protocol/constants.js';
import { isSynclineError, SynclineError } from '../../protocol/errors.js';
import { parseTelemetryBatch } from '../../protocol/telemetry-batch.js';
import { pendingControlsOf, withPendingControls } from '../flow-control/controls.js';
import { actorOf, adminAuth, readOrAdmin } from '../http/admin-auth.js';
import { decodeBody, decodedBodyBytes } from '../http/body.js';
import { deviceAuthenticator } from '../http/device-auth.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import { BatchedLookup } from '../store/batched-lookup.js';
import { listMappings } from './telemetry-mappings.js';
import { latestTelemetry, parseTelemetryQuery, queryTelemetry } from './telemetry-query.js';
import { approveTelemetryMapping } from './telemetry-review.js';
import type { TelemetryService } from './telemetry-service.js';

export interface TelemetryRoutesOptions {
  telemetry: TelemetryService;
  activity: ActivityRecorder;
  adminToken: string;
  bodyLimit: number;
  onIngested?: () => void;
}

/** `POST /v1/sync/telemetry/batch`: the device and its project come from the bearer token, as for row batches. */
export async function telemetryDeviceRoutes(app: FastifyInstance, options: TelemetryRoutesOptions): Promise<void> {
  const { telemetry } = options;
  const auth = deviceAuthenticator(telemetry.store, options.activity);
  const controls = new BatchedLookup((deviceIds) => pendingControlsOf(telemetry.store, deviceIds));
  app.post(Routes.telemetryBatch, {
    onRequest: auth.onRequest,
    preParsing: decodeBody(options.bodyLimit),
    handler: async (request) => {
      const device = auth.identity(request);
      try {
        const ack = await telemetry.ingest(device, parseTelemetryBatch(request.body), decodedBodyBytes(request));
        options.onIngested?.();
        return await withPendingControls(telemetry.store, device.device_id, ack, controls);
      } catch (error) {
        throw isSynclineError(error) ? error.withContext({ device_id: device.device_id }) : error;
      }
    },
  });
}

/** Queries (viewer) and mapping reviews (admin). */
export async function telemetryAdminRoutes(app: FastifyInstance, options: TelemetryRoutesOptions): Promise<void> {
  const { telemetry } = options;
  app.addHook('onRequest', adminAuth({ store: telemetry.store, adminToken: options.adminToken }, readOrAdmin));
  app.get(Routes.telemetryQuery, async (request) => queryTelemetry(telemetry.store, undefined, parseTelemetryQuery(request.query)));
  app.get(Routes.telemetryLatest, async (request) => {
    const device = (request.query as Record<string, unknown>).device;
    if (typeof device !== 'string') throw new SynclineError('invalid_request', 'device is required (once)', { field: 'device' });
    return latestTelemetry(telemetry.store, device);
  });
  app.get(Routes.telemetryMappings, async (request) => {
    const status = (request.query as Record<string, unknown>).status;
    if (status !== undefined && status !== 'pending' && status !== 'approved') throw new SynclineError('invalid_request', 'status is pending or approved', { field: 'status' });
    return { mappings: await listMappings(telemetry.store, status) };
  });
  app.post<{ Params: { id: string } }>(Routes.telemetryMappingApprove, { preParsing: decodeBody(options.bodyLimit) }, async (request) =>
    approveTelemetryMapping(telemetry.store, telemetry.partitions, request.params.id, request.body, actorOf(request).label),
  );
}
