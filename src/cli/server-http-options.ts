import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../cloud/http/connection-limits.js';
import type { OptionTable } from './options.js';

/** Flags bounding what one HTTP client can hold open (see HttpLimits). */
export const serverHttpOptions = {
  httpRequestTimeout: {
    flag: 'http-request-timeout',
    env: 'SYNCLINE_HTTP_REQUEST_TIMEOUT_MS',
    kind: 'integer',
    default: DEFAULT_HTTP_LIMITS.requestTimeoutMs,
    description: 'milliseconds a client has to send a whole request, headers and body; a slower one gets 408 and its socket is closed',
  },
  httpHeadersTimeout: {
    flag: 'http-headers-timeout',
    env: 'SYNCLINE_HTTP_HEADERS_TIMEOUT_MS',
    kind: 'integer',
    default: DEFAULT_HTTP_LIMITS.headersTimeoutMs,
    description: 'milliseconds a client has to send the request headers',
  },
  httpIdleTimeout: {
    flag: 'http-idle-timeout',
    env: 'SYNCLINE_HTTP_IDLE_TIMEOUT_MS',
    kind: 'integer',
    default: DEFAULT_HTTP_LIMITS.idleTimeoutMs,
    description: 'milliseconds without traffic after which a socket is closed',
  },
  httpMaxConnections: {
    flag: 'http-max-connections',
    env: 'SYNCLINE_HTTP_MAX_CONNECTIONS',
    kind: 'integer',
    default: DEFAULT_HTTP_LIMITS.maxConnections,
    description: 'open client sockets at most; more are answered 503 too_many_connections (keep it well under `ulimit -n`)',
  },
} satisfies OptionTable;

export function httpLimitsConfig(options: { httpRequestTimeout: number; httpHeadersTimeout: number; httpIdleTimeout: number; httpMaxConnections: number }): Partial<HttpLimits> {
  return {
    requestTimeoutMs: options.httpRequestTimeout,
    headersTimeoutMs: options.httpHeadersTimeout,
    idleTimeoutMs: options.httpIdleTimeout,
    maxConnections: options.httpMaxConnections,
  };
}
