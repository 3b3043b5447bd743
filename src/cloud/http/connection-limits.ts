import type { IncomingMessage, Server, ServerOptions, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { SynclineError } from '../../protocol/errors.js';

/**
 * Bounds on what one client can hold open. Without them a body trickled a byte every
 * 10 s keeps its socket forever, and slow-header sockets pile up until the process runs
 * out of file descriptors and even /healthz is unreachable.
 */
export interface HttpLimits {
  /** The whole request, headers and body, must arrive within this (else 408 and the socket closes). */
  requestTimeoutMs: number;
  /** The request headers must arrive within this. */
  headersTimeoutMs: number;
  /** A socket with no traffic in either direction for this long is closed. */
  idleTimeoutMs: number;
  /** Open client sockets at most; one more is answered 503 `too_many_connections` and closed. */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = { requestTimeoutMs: 60_000, headersTimeoutMs: 10_000, idleTimeoutMs: 75_000, maxConnections: 5_000 };

// Longer than the 60 s idle timeout of common load balancers, so they never reuse a socket we just closed.
const KEEP_ALIVE_MS = 72_000;

export function httpLimits(partial: Partial<HttpLimits> = {}): HttpLimits {
  const limits = { ...DEFAULT_HTTP_LIMITS, ...partial };
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isSafeInteger(value) || value < 1) throw new SynclineError('invalid_config', `the HTTP limit ${name} must be a positive integer`, { field: name });
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new SynclineError('invalid_config', 'the HTTP headers timeout cannot be longer than the request timeout', { field: 'headersTimeoutMs' });
  }
  return limits;
}

/** Fastify options that apply the timeouts to its node:http server. */
export function fastifyTimeouts(limits: HttpLimits): { connectionTimeout: number; requestTimeout: number; keepAliveTimeout: number; http: ServerOptions } {
  return {
    connectionTimeout: limits.idleTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: Math.min(KEEP_ALIVE_MS, limits.idleTimeoutMs),
    http: {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // node looks for expired requests every 30 s by default, which would let a slow client overstay by that much.
      connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
  };
}

/**
 * Caps the open sockets. One over the cap is still parsed (within the headers timeout)
 * so it gets a readable 503 `too_many_connections` rather than a silent drop, then it is
 * closed; past twice the cap sockets are dropped unanswered, so a flood cannot take the
 * file descriptors. Also closes the socket after any answer sent before the request
 * body was read (a 401 from an onRequest hook): otherwise node keeps reading and
 * discarding the rest of a body the client may trickle for as long as it likes.
 */
export function guardConnections(app: FastifyInstance, limits: HttpLimits, logger: Logger): void {
  const server: Server = app.server;
  const refusing = new WeakSet<Socket>();
  let open = 0;
  let refused = 0;
  server.prependListener('connection', (socket: Socket) => {
    if (open >= limits.maxConnections) {
      refused += 1;
      // One line per burst, not per socket: a flood must not become a log flood.
      if (refused === 1 || refused % 1000 === 0) logger.warn({ open, max_connections: limits.maxConnections, refused }, 'HTTP connection cap reached; refusing new connections');
      if (open >= 2 * limits.maxConnections) {
        socket.destroy();
        return;
      }
      refusing.add(socket);
    }
    open += 1;
    socket.once('close', () => {
      open -= 1;
      if (open < limits.maxConnections) refused = 0;
    });
  });
  // Callback hooks, not async ones: they run on every request, and a promise each is garbage for nothing.
  app.addHook('onRequest', (request, _reply, done) => {
    if (!refusing.has(request.raw.socket)) return done();
    done(new SynclineError('too_many_connections', `the server already holds ${limits.maxConnections} connections; try again shortly`, { max_connections: limits.maxConnections }));
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (!request.raw.complete || refusing.has(request.raw.socket)) reply.header('connection', 'close');
    done(null, payload);
  });
  keepSocketsTheServerOwes(server);
}

/**
 * The idle timeout is for clients that go quiet, not for a server that is slow
 * to answer: node destroys a socket idle for that long even while its request,
 * fully received, still waits for its answer (a batch queued behind a busy
 * group commit), and the client sees `socket hang up` for a batch that may
 * still commit (the fan-in bench at 5,000 HTTP devices lost ~150 requests so).
 * A socket whose request is complete and unanswered is kept; one still sending
 * its request (the request timeout bounds it too) or not reading its answer is
 * closed as before.
 */
function keepSocketsTheServerOwes(server: Server): void {
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    response.on('timeout', (socket: Socket) => {
      if (!request.complete || response.headersSent) socket.destroy();
    });
  });
}

/** How long a socket may stay silent after connecting once a stop has begun (before it, node would answer 408 after the headers timeout). */
const SILENT_SOCKET_GRACE_MS = 1_000;

/**
 * How a node:http server stops without waiting on sockets that carry no request:
 * call it when the server is made (it must see every connection), and call the
 * function it returns with the server's close to stop.
 *
 * node closes the sockets idle when close() is called, but a socket whose request
 * was in flight then stays open after its answer until the keep-alive timeout
 * (72 s), and a socket that has sent no request yet (a client that gave up on a
 * request while connecting: undici keeps the new socket for the keep-alive time
 * it learned, 71 s) is never idle to node, which counts it busy from its connect
 * and stops expiring sockets when close() begins. Either held `syncline dev`'s
 * stop until its kill. Until the close completes, every 100 ms, idle sockets are
 * closed, and so are sockets that have sent no request in the
 * SILENT_SOCKET_GRACE_MS since they connected (a request on its way, sent right
 * after the connect, still arrives); requests in flight get their answers.
 */
export function closingLettingRequestsFinish(server: Server): (close: () => Promise<void>) => Promise<void> {
  const silent = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    silent.set(socket, Date.now());
    socket.once('close', () => silent.delete(socket));
  });
  server.on('request', (request: IncomingMessage) => silent.delete(request.socket));
  return async (close) => {
    const sweep = setInterval(() => {
      server.closeIdleConnections();
      const before = Date.now() - SILENT_SOCKET_GRACE_MS;
      for (const [socket, connectedAt] of silent) if (connectedAt < before) socket.destroy();
    }, 100);
    try {
      await close();
    } finally {
      clearInterval(sweep);
    }
  };
}
