import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseControlAck } from '../../protocol/control.js';
import { Headers, Routes } from '../../protocol/constants.js';
import { authenticateDevice, type DeviceIdentity } from '../auth/devices.js';
import { bearerToken } from '../auth/tokens.js';
import { resumeLineage } from '../governance/replay-intents.js';
import type { AdminRole } from '../governance/admin-tokens.js';
import { actorOf, adminAuth } from '../http/admin-auth.js';
import { decodeBody } from '../http/body.js';
import { listBrokerAccounts } from '../mqtt/mosquitto-files.js';
import type { MqttStats } from '../mqtt/mqtt-stats.js';
import { transactionWithRetry, type Store } from '../store/store.js';
import { pendingControls, recentControls, recordControlAck } from './controls.js';
import type { FlowLimits } from './flow-decision.js';
import { readFlow } from './flow-state.js';
import { resetMaterialization } from './operator-actions.js';

export interface FlowRoutesOptions {
  store: Store;
  adminToken: string;
  bodyLimit: number;
  limits: FlowLimits;
  /** The MQTT front door's counters, when MQTT is on. */
  mqttStats?: () => MqttStats | undefined;
  /** After an action issued a control or requested a replay. */
  onChange?: () => void;
}

type IdParams = { Params: { id: string } };

/**
 * Control messages for HTTP devices: the pending ones (also carried by every
 * batch ack) and their acks. A device sees and acks only its own.
 */
export async function deviceControlRoutes(app: FastifyInstance, options: FlowRoutesOptions): Promise<void> {
  const devices = new WeakMap<FastifyRequest, DeviceIdentity>();
  const authenticate = async (request: FastifyRequest) => {
    devices.set(request, await authenticateDevice(options.store, bearerToken(request.headers[Headers.authorization])));
  };
  app.get(Routes.syncControls, { onRequest: authenticate }, async (request) => ({ controls: await pendingControls(options.store, devices.get(request)!.device_id) }));
  app.post(Routes.syncControlsAck, { onRequest: authenticate, preParsing: decodeBody(options.bodyLimit) }, async (request) => {
    const ack = parseControlAck(request.body);
    return { control_id: ack.control_id, recorded: await recordControlAck(options.store, devices.get(request)!.device_id, ack) };
  });
}

/** Reads are a viewer's; resetting the breaker an operator's; the broker's credentials an admin's. */
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
  app.get(Routes.mqttStats, async () => ({ mqtt: options.mqttStats?.() ?? null }));
  app.get(Routes.mqttBrokerConfig, async () => listBrokerAccounts(store));
}
