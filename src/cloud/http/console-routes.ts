import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Routes } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';

/** Where scripts/build-console.js writes the bundle; the same place from src/ (tsx) and dist/ (built). */
export const CONSOLE_DIR = fileURLToPath(new URL('../../../dist/console/', import.meta.url));

const TYPES: Record<string, string> = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.map': 'application/json', '.svg': 'image/svg+xml' };
const ASSET_NAME = /^[a-z0-9][a-z0-9.-]{0,80}$/;
// Everything the page loads comes from this server: no CDN, and no inline script an injected value could become.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

function send(reply: FastifyReply, name: string): FastifyReply {
  const path = join(CONSOLE_DIR, name);
  if (!existsSync(path)) {
    if (name === 'index.html') throw new SynclineError('unavailable', 'the console is not built; run `npm run build` (or `node scripts/build-console.js`)');
    throw new SynclineError('not_found', `no console asset ${name}`);
  }
  const type = TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream';
  return reply
    .header('content-security-policy', CSP)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', name === 'index.html' ? 'no-cache' : 'public, max-age=300')
    .type(type)
    .send(readFileSync(path));
}

/**
 * The web console: one HTML page and its bundle, public like any login page —
 * every figure it shows comes from the admin API with the token the operator signs in with.
 */
export async function consoleRoutes(app: FastifyInstance): Promise<void> {
  app.get(Routes.console, async (_request, reply) => send(reply, 'index.html'));
  app.get<{ Params: { '*': string } }>(Routes.consoleAsset, async (request, reply) => {
    const name = request.params['*'];
    if (name === '' ) return send(reply, 'index.html');
    if (!ASSET_NAME.test(name)) throw new SynclineError('not_found', 'no such console asset');
    return send(reply, name);
  });
}
