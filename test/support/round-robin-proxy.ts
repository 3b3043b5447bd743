import { createServer, request, type Server } from 'node:http';

export interface RoundRobinProxy {
  url: string;
  close(): Promise<void>;
}

/**
 * A plain round-robin HTTP load balancer: each request (event streams included)
 * goes to the next backend `backends()` lists; a backend that is down answers 502.
 */
export async function startRoundRobinProxy(backends: () => string[]): Promise<RoundRobinProxy> {
  let next = 0;
  const server: Server = createServer((req, res) => {
    const list = backends();
    const target = new URL(list[next++ % list.length]!);
    const upstream = request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'bad_gateway', message: 'backend down' } }));
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
