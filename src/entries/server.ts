// `syncline/server`: run the cloud side from your own code. Either a whole server
// (CloudServer.start over a store from openStore), or Syncline's routes inside your
// own Fastify app (synclinePlugin) with your own authentication of two-way requests.
export { CloudServer } from '../cloud/server.js';
export type { CloudServerOptions } from '../cloud/server.js';
export type { CloudServiceOptions } from '../cloud/cloud-services.js';
export { synclinePlugin } from '../cloud/embed.js';
export type { SynclinePluginOptions } from '../cloud/embed.js';
export type { SharedAuthenticate } from '../cloud/http/shared-routes.js';
export type { SharedPrincipal } from '../cloud/shared/credentials.js';
export { openStore } from '../cloud/store/open-store.js';
export type { OpenStoreOptions } from '../cloud/store/open-store.js';
export type { Store, Queryable, QueryResult, StoreKind } from '../cloud/store/store.js';
export { parseSharedConfig } from '../cloud/shared/declarations.js';
export type { SharedSyncConfig } from '../cloud/shared/declarations.js';
export { createDevice, revokeDevice, listDevices } from '../cloud/auth/devices.js';
export type { DeviceIdentity, DeviceRecord } from '../cloud/auth/devices.js';
export type { SchemaPolicy, AdditivePolicy } from '../cloud/governance/policy.js';
export type { CloudMqttOptions } from '../cloud/mqtt/mqtt-service.js';
export { SynclineError, isSynclineError } from '../protocol/errors.js';
