import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { extname, join, normalize } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { tempDir } from './temp.js';

export const CHROMIUM = '/usr/bin/chromium';
export const chromiumMissing = existsSync(CHROMIUM) ? false : 'no /usr/bin/chromium';

const TYPES: Record<string, string> = { '.js': 'text/javascript', '.html': 'text/html', '.wasm': 'application/wasm', '.map': 'application/json' };

/** Runs the real browser build (scripts/build-browser.js) into a fresh directory. */
export function buildBrowserBundle(): { path: string; remove(): void } {
  const out = tempDir('syncline-browser-');
  const built = spawnSync(process.execPath, ['scripts/build-browser.js', out.path], { encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`browser build failed: ${built.stderr}`);
  return out;
}

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/**
 * Serves the bundle directory and the test's pages on 127.0.0.1 (a secure
 * context, as OPFS needs); with `api`, every other path is passed through to
 * that server, so the page reaches Syncline from its own origin as it would
 * behind an app's reverse proxy (streams, such as the event stream, included).
 */
export interface PageServerOptions {
  /** Where the bundle's files are served (default `/`). */
  bundleAt?: string;
  /** POST routes of the app the page belongs to (its sign-in, say): JSON body in, JSON answer out. */
  posts?: Record<string, (body: any) => Promise<unknown>>;
}

export async function servePages(dir: string, pages: Record<string, string>, api?: string, options: PageServerOptions = {}): Promise<PageServer> {
  const target = api ? new URL(api) : undefined;
  const bundleAt = options.bundleAt ?? '/';
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (pages[path] !== undefined) {
      res.writeHead(200, { 'content-type': TYPES[extname(path)] ?? 'text/html', 'cache-control': 'no-store' }).end(pages[path]);
      return;
    }
    const post = req.method === 'POST' ? options.posts?.[path] : undefined;
    if (post) {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        post(JSON.parse(body)).then(
          (answer) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer)),
          (error: Error) => res.writeHead(500).end(error.message),
        );
      });
      return;
    }
    const file = path.startsWith(bundleAt) ? join(dir, normalize(path.slice(bundleAt.length - 1)).replace(/^(\.\.[/\\])+/, '')) : '';
    if (file && existsSync(file) && TYPES[extname(file)]) {
      res.writeHead(200, { 'content-type': TYPES[extname(file)]!, 'cache-control': 'no-store' }).end(readFileSync(file));
      return;
    }
    if (!target) {
      res.writeHead(404).end();
      return;
    }
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => res.headersSent ? res.destroy() : res.writeHead(502).end());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Headless Chromium on a fresh profile (OPFS lives in it, so reloads keep the database and runs never share one). */
export async function launchChromium(): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = tempDir('syncline-chromium-');
  const context = await chromium.launchPersistentContext(profile.path, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  return {
    context,
    close: async () => {
      await context.close();
      profile.remove();
    },
  };
}
