import type { FastifyPluginAsync } from 'fastify';
import pino, { type Logger } from 'pino';
import { prepareCloud, type CloudServiceOptions } from './cloud-services.js';
import type { SchemaPolicy } from './governance/policy.js';
import { synclineRoutes } from './http/build-app.js';
import type { SharedAuthenticate } from './http/shared-routes.js';

export interface SynclinePluginOptions extends Omit<CloudServiceOptions, 'logger' | 'schemaPolicy'> {
  /** Default `review`: every new edge table schema waits for an operator. */
  schemaPolicy?: SchemaPolicy;
  /** Default: silent. Syncline logs through a child of this logger. */
  logger?: Logger;
  /**
   * Your own authentication of two-way sync requests (session cookie, your JWT
   * library, an API gateway header...): return who calls, or throw to refuse (a
   * SynclineError('unauthorized', ...) answers 401). Without it, the JWT settings of
   * `shared.auth` are used. Edge devices always use their device tokens.
   */
  authenticate?: SharedAuthenticate;
}

/**
 * Syncline's routes inside your own Fastify app (`app.register(synclinePlugin, {...})`,
 * optionally with a `prefix`). The plugin is encapsulated: its error handler, JSON-only
 * body parsing and body limit apply to Syncline's routes only. The store is yours to
 * open and close; it is migrated when the plugin registers. The replay worker and flow
 * control start when the app is ready and stop when it closes.
 */
export const synclinePlugin: FastifyPluginAsync<SynclinePluginOptions> = async (app, options) => {
  const { authenticate, ...rest } = options;
  const logger = options.logger ?? pino({ level: 'silent' });
  const services = await prepareCloud({ ...rest, logger, schemaPolicy: options.schemaPolicy ?? 'review' }, { jwtOptional: authenticate !== undefined });
  await app.register(synclineRoutes, { ...services.routes(), ...(authenticate ? { authenticate } : {}) });
  const stop = new AbortController();
  let running: Promise<void> | undefined;
  app.addHook('onReady', async () => {
    running = services.run(stop.signal);
  });
  app.addHook('onClose', async () => {
    stop.abort();
    await running;
  });
};
