import { promisify } from 'node:util';
import { gunzip as gunzipCallback, type InputType, type ZlibOptions } from 'node:zlib';
import { SynclineError } from '../../protocol/errors.js';

const gunzip = promisify(gunzipCallback) as (buffer: InputType, options: ZlibOptions) => Promise<Buffer>;

/** JSON, or gzipped JSON (told apart by gzip's magic bytes), within `limit` bytes after decompression. */
export async function decodePayload(payload: Buffer, limit: number): Promise<{ json: unknown; bytes: number }> {
  let body = payload;
  if (payload.length >= 2 && payload[0] === 0x1f && payload[1] === 0x8b) {
    try {
      body = await gunzip(payload, { maxOutputLength: limit });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw new SynclineError('payload_too_large', `batch is larger than ${limit} bytes after decompression`, { limit });
      throw new SynclineError('malformed_payload', `payload is not valid gzip: ${(error as Error).message}`);
    }
  }
  if (body.length > limit) throw new SynclineError('payload_too_large', `batch is larger than ${limit} bytes`, { limit });
  try {
    return { json: JSON.parse(body.toString('utf8')) as unknown, bytes: body.length };
  } catch {
    throw new SynclineError('malformed_payload', 'payload is not valid JSON');
  }
}
