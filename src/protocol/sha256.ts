import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';

/**
 * SHA-256 of a string's UTF-8 bytes as lowercase hex. Synchronous and free of
 * Node built-ins so protocol code runs the same in browsers (WebCrypto's digest
 * is async, and the fingerprint is computed inside synchronous schema reads).
 */
export function sha256Hex(text: string): string {
  return bytesToHex(sha256(utf8ToBytes(text)));
}
