import type { FastifyInstance } from 'fastify';
import { Routes } from '../../protocol/constants.js';
import { deviceCreateBody } from '../../protocol/admin-requests.js';
import { SynclineError } from '../../protocol/errors.js';
import { createDevice, getDevice, listDevices, revokeDevice } from '../auth/devices.js';
import { getLineageDetail, listLineages } from '../query/lineages.js';
import { parseLimit, readMirrorRows } from '../query/mirror-rows.js';
import type { Store } from '../store/store.js';
import { adminAuth, readOrAdmin } from './admin-auth.js';
import { decodeBody } from './body.js';

export interface AdminRoutesOptions {
  store: Store;
  adminToken: string;
  bodyLimit: number;
}

type IdParams = { Params: { id: string } };

function parseDeviceCreate(body: unknown): { name: string; project_id?: string | undefined } {
  const parsed = deviceCreateBody.safeParse(body ?? {});
  if (parsed.success) return parsed.data;
  const field = parsed.error.issues[0]?.path.join('.') || '(body)';
  throw new SynclineError('invalid_request', `${field}: ${parsed.error.issues[0]?.message ?? 'invalid'}`, { field });
}

function queryString(query: unknown, field: string): string | undefined {
  const value = (query as Record<string, unknown> | undefined)?.[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new SynclineError('invalid_request', `${field} must be given once`, { field });
  return value;
}

/** The operator API; reads need a viewer token, changes an admin token (see admin-tokens.ts). */
export async function adminRoutes(app: FastifyInstance, options: AdminRoutesOptions): Promise<void> {
  const { store } = options;
  app.addHook('onRequest', adminAuth(options, readOrAdmin));

  app.post(Routes.devices, { preParsing: decodeBody(options.bodyLimit) }, async (request, reply) => {
    const { name, project_id: projectId } = parseDeviceCreate(request.body);
    const created = await createDevice(store, projectId === undefined ? { name } : { name, projectId });
    return reply.status(201).send(created);
  });
  app.get(Routes.devices, async () => ({ devices: await listDevices(store) }));
  app.get<IdParams>(Routes.device, async (request) => getDevice(store, request.params.id));
  app.post<IdParams>(Routes.deviceRevoke, async (request) => revokeDevice(store, request.params.id));

  app.get(Routes.lineages, async (request) => {
    const deviceId = queryString(request.query, 'device_id');
    const limit = queryString(request.query, 'limit');
    const after = queryString(request.query, 'after');
    return listLineages(store, {
      ...(deviceId === undefined ? {} : { deviceId }),
      ...(limit === undefined || limit === '' ? {} : { limit: Number(limit) }),
      ...(after === undefined || after === '' ? {} : { after }),
    });
  });
  app.get<IdParams>(Routes.lineage, async (request) => getLineageDetail(store, request.params.id));
  app.get<IdParams>(Routes.mirrorRows, async (request) => {
    const limit = parseLimit(queryString(request.query, 'limit'));
    const after = queryString(request.query, 'after');
    return readMirrorRows(store, request.params.id, after === undefined ? { limit } : { limit, after });
  });
}
