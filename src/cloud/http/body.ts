import type { IncomingMessage } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { FastifyRequest, preParsingAsyncHookHandler } from 'fastify';
import { Headers } from '../../protocol/constants.js';
import { SynclineError } from '../../protocol/errors.js';

/**
 * Counts the decoded body and stops it at the limit. Fastify checks its bodyLimit
 * too, but only after a chunk is out; stopping here also stops the decompressor,
 * so a gzip bomb costs at most `limit` bytes of inflating.
 */
class LimitedBody extends Transform {
  readonly #limit: number;
  #decoded = 0;
  /** Compressed bytes read; Fastify compares it with Content-Length. */
  receivedEncodedLength: number | undefined;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  get decodedLength(): number {
    return this.#decoded;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#decoded += chunk.length;
    if (this.#decoded > this.#limit) {
      callback(new SynclineError('payload_too_large', `request body is larger than ${this.#limit} bytes after decompression`, { limit: this.#limit }));
      return;
    }
    callback(null, chunk);
  }
}

const bodies = new WeakMap<IncomingMessage, LimitedBody>();

/** Bytes of the decoded body (what the ledger records), once it has been read. */
export function decodedBodyBytes(request: FastifyRequest): number {
  const body = bodies.get(request.raw);
  if (body) return body.decodedLength;
  // A plain body with a length read as is: Fastify refuses it unless exactly that many bytes arrived.
  const declared = Number(request.headers[Headers.contentLength]);
  return Number.isSafeInteger(declared) && declared >= 0 ? declared : 0;
}

/** preParsing hook: gzip or identity bodies, limited after decompression. */
export function decodeBody(limit: number): preParsingAsyncHookHandler {
  return async (request, _reply, payload) => {
    const encoding = String(request.headers[Headers.contentEncoding] ?? 'identity').trim().toLowerCase();
    const plain = encoding === 'identity' || encoding === '';
    // A plain body with Content-Length needs no counting stream (a stream and a pipe per request): Fastify
    // refuses a declared length over its bodyLimit before reading anything, and a body of another length.
    if (plain && request.headers[Headers.contentLength] !== undefined) return payload;
    const body = new LimitedBody(limit);
    bodies.set(request.raw, body);
    const source = payload as Readable;
    source.on('error', (error) => body.destroy(error));
    if (plain) {
      source.pipe(body);
      return body;
    }
    if (encoding !== 'gzip' && encoding !== 'x-gzip') {
      throw new SynclineError('malformed_payload', `unsupported content-encoding ${JSON.stringify(encoding.slice(0, 40))}; use gzip or none`);
    }
    const gunzip = createGunzip();
    let encoded = 0;
    body.receivedEncodedLength = 0;
    source.on('data', (chunk: Buffer) => {
      encoded += chunk.length;
      body.receivedEncodedLength = encoded;
    });
    gunzip.on('error', (error) => body.destroy(new SynclineError('malformed_payload', `body is not valid gzip: ${error.message}`)));
    body.on('error', () => {
      gunzip.destroy();
      source.unpipe(gunzip);
    });
    source.pipe(gunzip).pipe(body);
    return body;
  };
}
