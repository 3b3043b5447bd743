import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseControlAck } from '../../protocol/control.js';
import { Routes } from '../../protocol/constants.js';
import { getDevice } from '../auth/devices.js';
import { recordAudit } from '../governance/audit.js';
import { parsePause } from '../governance/requests.js';
import { resumeLineage } from '../governance/replay-intents.js';
import type { DevicePauseAnswer } from '../../protocol/admin-answers.js';
import type { AdminRole } from '../governance/admin-tokens.js';
import { actorOf, adminAuth } from '../http/admin-auth.js';
import { decodeBody } from '../http/body.js';
import { deviceAuthenticator } from '../http/device-auth.js';
import { listBrokerAccounts } from '../mqtt/mosquitto-files.js';
import type { ActivityRecorder } from '../metrics/activity-recorder.js';
import type { MqttStats } from '../mqtt/mqtt-stats.js';
import { transactionWithRetry, type Queryable, type Store } from '../store/store.js';
import { pendingControls, recentControls, recordControlAck } from './controls.js';
import type { FlowLimits } from './flow-decision.js';
import { readFlow } from './flow-state.js';
import { pauseByOperator, resetMaterialization, resumeDeviceByOperator, type DeviceFlowResult } from './operator-actions.js';

export interface FlowRoutesOptions {
  store: Store;
  activity: ActivityRecorder;
  adminToken: string;
  bodyLimit: number;
  limits: FlowLimits;
  /** The MQTT front door's counters (every worker's sum under --workers), when MQTT is on. */
  mqttStats?: () => Promise<MqttStats | undefined>;
  /** After an action issued a control or requested a replay. */
  onChange?: () => void;
}

type IdParams = { Params: { id: string } };

/**
 * Control messages for HTTP devices: the pending ones (also carried by every
 * batch ack) and their acks. A device sees and acks only its own.
 */
export async function deviceControlRoutes(app: FastifyInstance, options: FlowRoutesOptions): Promise<void> {
  const auth = deviceAuthenticator(options.store, options.activity);
  app.get(Routes.syncControls, { onRequest: auth.onRequest }, async (request) => ({ controls: await pendingControls(options.store, auth.identity(request).device_id) }));
  app.post(Routes.syncControlsAck, { onRequest: auth.onRequest, preParsing: decodeBody(options.bodyLimit) }, async (request) => {
    const ack = parseControlAck(request.body);
    return { control_id: ack.control_id, recorded: await recordControlAck(options.store, auth.identity(request).device_id, ack) };
  });
}

/** Reads are a viewer's; pausing, resuming and resetting the breaker an operator's; the broker's credentials an admin's. */
function roleFor(request: FastifyRequest): AdminRole {
  if (request.routeOptions.url === Routes.mqttBrokerConfig) return 'admin';
  return request.method === 'GET' ? 'viewer' : 'operator';
}

/** Operator routes of flow control and the MQTT broker. */
export async function flowAdminRoutes(app: FastifyInstance, options: FlowRoutesOptions): Promise<void> {
  const { store } = options;
  app.addHook('onRequest', adminAuth(options, roleFor));

  app.get<IdParams>(Routes.lineageFlow, async (request) => ({
    lineage_id: request.params.id,
    limits: options.limits,
    flow: await readFlow(store, request.params.id),
    controls: await recentControls(store, request.params.id),
  }));
  app.post<IdParams>(Routes.lineageResetMaterialization, async (request) => {
    const actor = actorOf(request).label;
    const result = await transactionWithRetry(store, (tx) => resetMaterialization(tx, request.params.id, options.limits, () => resumeLineage(tx, request.params.id, actor)));
    options.onChange?.();
    return result;
  });
  app.post<IdParams>(Routes.lineagePause, { preParsing: decodeBody(options.bodyLimit) }, async (request) => {
    const { note } = parsePause(request.body);
    const actor = actorOf(request).label;
    const device = await transactionWithRetry(store, async (tx) => {
      const result = await pauseByOperator(tx, request.params.id);
      await recordAudit(tx, { actor, action: 'flow.pause', lineage_id: request.params.id, detail: { note: note ?? null, control_id: result.control_id } });
      return result;
    });
    options.onChange?.();
    return { lineage_id: request.params.id, device };
  });
  app.post<IdParams>(Routes.devicePause, { preParsing: decodeBody(options.bodyLimit) }, async (request) => {
    const { note } = parsePause(request.body);
    const answer = await onEveryLineage(store, request.params.id, actorOf(request).label, 'flow.pause', note, pauseByOperator);
    options.onChange?.();
    return answer;
  });
  app.post<IdParams>(Routes.deviceResume, async (request) => {
    const answer = await onEveryLineage(store, request.params.id, actorOf(request).label, 'flow.resume', undefined, resumeDeviceByOperator);
    options.onChange?.();
    return answer;
  });
  app.get(Routes.mqttStats, async () => ({ mqtt: (await options.mqttStats?.()) ?? null }));
  app.get(Routes.mqttBrokerConfig, async () => listBrokerAccounts(store));
}

/**
 * One flow action on every lineage of a device, in one transaction (lineages in
 * id order, the order every lock taker uses), each audited. A device with no
 * lineage yet answers an empty list: there is nothing it sends to pause.
 */
async function onEveryLineage(
  store: Store,
  deviceId: string,
  actor: string,
  action: 'flow.pause' | 'flow.resume',
  note: string | undefined,
  act: (tx: Queryable, lineageId: string) => Promise<DeviceFlowResult>,
): Promise<DevicePauseAnswer> {
  const device = await getDevice(store, deviceId);
  return transactionWithRetry(store, async (tx) => {
    const { rows } = await tx.query<{ id: string; source_table: string }>('SELECT id, source_table FROM edge_table_lineages WHERE device_id = $1 ORDER BY id', [device.device_id]);
    const lineages: DevicePauseAnswer['lineages'] = [];
    for (const lineage of rows) {
      const result = await act(tx, lineage.id);
      await recordAudit(tx, { actor, action, lineage_id: lineage.id, detail: { device_id: device.device_id, note: note ?? null, control_id: result.control_id } });
      lineages.push({ lineage_id: lineage.id, source_table: lineage.source_table, device: result });
    }
    return { device_id: device.device_id, lineages };
  });
}
