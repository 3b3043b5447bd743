import { readFileSync } from 'node:fs';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { IngestTotals } from '../metrics/instruments.js';
import { sampleLiveFigures } from '../metrics/live-figures.js';
import { twowayOverview } from '../query/twoway-overview.js';
import { Routes } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';
import type { Store } from '../store/store.js';
import { actorOf, adminAuth } from './admin-auth.js';
import { openApiDocument } from './openapi.js';

export interface OperatingRoutesOptions {
  store: Store;
  adminToken: string;
  /** How often the live stream sends figures; default one second. */
  liveIntervalMs?: number;
  /** Snapshots held by this process, when two-way sync is on. */
  snapshots?: () => { open: number; bytes: number };
  /** The ingest counters the live rates come from; this process's when absent. */
  ingestTotals?: () => Promise<IngestTotals>;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** The OpenAPI document (public: it describes the API, not the data). */
export async function openApiRoutes(app: FastifyInstance): Promise<void> {
  const document = openApiDocument(VERSION);
  app.get(Routes.openapi, async () => document);
}

/** Admin routes of operating: who a token is. */
export async function operatingRoutes(app: FastifyInstance, options: OperatingRoutesOptions): Promise<void> {
  app.addHook('onRequest', adminAuth(options, () => 'viewer'));
  app.get(Routes.whoami, async (request) => {
    const actor = actorOf(request);
    return { label: actor.label, role: actor.role };
  });

  app.get(Routes.twowayOverview, async () => twowayOverview(options.store, options.snapshots?.() ?? null));

  const streams = new Set<FastifyReply>();
  // Set when the server begins to close: a stream started after preClose ended the open ones would never end.
  let closing = false;
  app.get(Routes.live, async (_request, reply) => {
    if (closing) throw new SynclineError('unavailable', 'the server is stopping', {});
    reply.hijack();
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
    const stop = sampleLiveFigures(options.store, options.liveIntervalMs ?? 1000, (figures) => reply.raw.write(`event: figures\ndata: ${JSON.stringify(figures)}\n\n`), options.ingestTotals);
    streams.add(reply);
    reply.raw.on('close', () => {
      stop();
      streams.delete(reply);
    });
  });
  // Live streams never end on their own; closing them lets the server stop.
  app.addHook('preClose', async () => {
    closing = true;
    for (const stream of streams) stream.raw.end();
  });
}
