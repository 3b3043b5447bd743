import type { Socket } from 'node:net';
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SynclineError, isSynclineError } from '../../protocol/errors.js';

/** Fastify's own request errors, in the catalogue's words. */
const FASTIFY_CODES: Record<string, () => SynclineError> = {
  FST_ERR_CTP_BODY_TOO_LARGE: () => new SynclineError('payload_too_large', 'request body is larger than the configured limit'),
  FST_ERR_CTP_INVALID_JSON_BODY: () => new SynclineError('malformed_payload', 'body is not valid JSON'),
  FST_ERR_CTP_EMPTY_JSON_BODY: () => new SynclineError('malformed_payload', 'body is empty'),
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: () => new SynclineError('malformed_payload', 'body length does not match Content-Length'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: () => new SynclineError('malformed_payload', 'body must be application/json'),
  FST_ERR_BAD_URL: () => new SynclineError('invalid_request', 'the URL is not valid (a malformed percent-encoding?)', { field: 'url' }),
  FST_ERR_MAX_PARAM_LENGTH: () => new SynclineError('uri_too_long', 'a path segment of the URL is longer than the server reads', { field: 'url' }),
};

/** Errors Node's HTTP parser raises before Fastify sees a request. */
function clientErrorOf(code: string | undefined): SynclineError {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return new SynclineError('request_timeout', 'the request did not arrive in time');
  if (code === 'HPE_HEADER_OVERFLOW') return new SynclineError('headers_too_large', 'the request headers are larger than the server reads');
  return new SynclineError('malformed_payload', 'the request is not valid HTTP');
}

/**
 * Fastify options that make its own refusals (bad URL, path segment too long) and
 * Node's (408 timeout, 431 header overflow, 400 unparsable request) answer in the
 * documented body `{error, message, context}` like every other refusal.
 */
export function frontDoorOptions(logger: FastifyBaseLogger): {
  frameworkErrors: (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => void;
  clientErrorHandler: (error: Error & { code?: string }, socket: Socket) => void;
} {
  return {
    frameworkErrors(error, request, reply) {
      const mapped = toSynclineError(error);
      logger.info({ code: mapped.code, method: request.method, url: request.url.slice(0, 200) }, 'request refused');
      void reply.status(mapped.status).send(mapped.toJSON());
    },
    clientErrorHandler(error, socket) {
      // A reset connection has no one left to answer.
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const mapped = clientErrorOf(error.code);
      logger.debug({ code: mapped.code, err: error }, 'client error');
      if (socket.writable) {
        const body = JSON.stringify(mapped.toJSON());
        const reason = { 400: 'Bad Request', 408: 'Request Timeout', 431: 'Request Header Fields Too Large' }[mapped.status] ?? 'Bad Request';
        socket.write(`HTTP/1.1 ${mapped.status} ${reason}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
      }
      socket.destroy(error);
    },
  };
}

/**
 * Turns anything thrown while serving a request into a SynclineError. Only this
 * front door decides HTTP statuses; a fault that is not a known client error is
 * `internal`, with a generic message (details go to the log, not to the caller).
 */
export function toSynclineError(error: unknown): SynclineError {
  if (isSynclineError(error)) return error;
  const fastifyError = error as Partial<FastifyError>;
  const known = fastifyError.code ? FASTIFY_CODES[fastifyError.code] : undefined;
  if (known) return known();
  if (error instanceof SyntaxError) return new SynclineError('malformed_payload', 'body is not valid JSON');
  const status = fastifyError.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    const code = ({ 404: 'not_found', 408: 'request_timeout', 413: 'payload_too_large', 414: 'uri_too_long', 431: 'headers_too_large' } as const)[status] ?? 'invalid_request';
    return new SynclineError(code, fastifyError.message ?? 'bad request');
  }
  return new SynclineError('internal', 'internal server error');
}

export function installErrorHandling(app: FastifyInstance, logger: FastifyBaseLogger): void {
  app.setErrorHandler((error, request, reply) => {
    const mapped = toSynclineError(error);
    if (mapped.status >= 500) logger.error({ err: error, method: request.method, url: request.url, context: mapped.context }, 'request failed');
    else logger.info({ code: mapped.code, method: request.method, url: request.url, context: mapped.context }, 'request refused');
    if (mapped.code === 'payload_too_large') reply.header('connection', 'close');
    return reply.status(mapped.status).send(mapped.toJSON());
  });
}

/** Unknown routes in the catalogue's words; only for the standalone server (an embedding app keeps its own). */
export function installNotFound(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const error = new SynclineError('not_found', `no route ${request.method} ${request.url.split('?')[0]}`);
    return reply.status(error.status).send(error.toJSON());
  });
}
