import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance, onResponseAsyncHookHandler } from 'fastify';
import { Registry } from 'prom-client';
import { Routes } from '../../protocol/constants.js';
import { adminAuth } from '../http/admin-auth.js';
import { closingLettingRequestsFinish } from '../http/connection-limits.js';
import type { Store } from '../store/store.js';
import type { MetricsSource } from './cluster-metrics.js';
import { observeHttp, processRegistry } from './instruments.js';
import { storeRegistry, type GaugeSources } from './store-gauges.js';

/** This server's metrics: the process's counters and the gauges it reads at scrape time. */
export function serverRegistry(sources: GaugeSources): Registry {
  return Registry.merge([processRegistry, storeRegistry(sources)]);
}

export interface MetricsRoutesOptions {
  store: Store;
  adminToken: string;
  registry: MetricsSource;
}

/** GET /metrics on the API port, for any admin token (viewer and up): the figures say much about the fleet. */
export async function metricsRoutes(app: FastifyInstance, options: MetricsRoutesOptions): Promise<void> {
  app.addHook('onRequest', adminAuth(options, () => 'viewer'));
  app.get(Routes.metrics, async (_request, reply) => reply.type(options.registry.contentType).send(await options.registry.metrics()));
}

/** onResponse hook timing every answered request by its route template. */
export const observeRequests: onResponseAsyncHookHandler = async (request, reply) => {
  observeHttp(request.method, request.routeOptions.url, reply.statusCode, reply.elapsedTime / 1000);
};

/**
 * `--metrics-port`: /metrics alone on a port of its own, without a token, for a
 * scraper on a private network (bind it to an address only that network reaches).
 */
export async function startMetricsServer(registry: MetricsSource, port: number, host: string): Promise<{ url: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== Routes.metrics) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: unknown) => response.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${(error as Error).message}\n`),
    );
  });
  const closeGracefully = closingLettingRequestsFinish(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}${Routes.metrics}`,
    close: () => closeGracefully(() => new Promise<void>((resolve) => server.close(() => resolve()))),
  };
}
