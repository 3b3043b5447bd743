/**
 * Standard base64 (RFC 4648 §4, padded) over Uint8Array, without Node's Buffer
 * so protocol code runs in browsers unchanged. Output is byte-for-byte what
 * Buffer's 'base64' gives; callers validate input text first (values.ts does).
 */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const CODES = new TextEncoder().encode(ALPHABET);
const PAD = 0x3d; // '='
const SEXTETS = new Uint8Array(128);
for (let i = 0; i < ALPHABET.length; i++) SEXTETS[ALPHABET.charCodeAt(i)] = i;
// The encoded text is ASCII, so decoding its bytes as UTF-8 is exact (and far faster than string concatenation).
const ascii = new TextDecoder();

export function toBase64(bytes: Uint8Array): string {
  const out = new Uint8Array(Math.ceil(bytes.length / 3) * 4);
  const whole = bytes.length - (bytes.length % 3);
  let o = 0;
  for (let i = 0; i < whole; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[o++] = CODES[v >> 18]!;
    out[o++] = CODES[(v >> 12) & 63]!;
    out[o++] = CODES[(v >> 6) & 63]!;
    out[o++] = CODES[v & 63]!;
  }
  const rest = bytes.length - whole;
  if (rest > 0) {
    const v = (bytes[whole]! << 16) | (rest === 2 ? bytes[whole + 1]! << 8 : 0);
    out[o++] = CODES[v >> 18]!;
    out[o++] = CODES[(v >> 12) & 63]!;
    out[o++] = rest === 2 ? CODES[(v >> 6) & 63]! : PAD;
    out[o] = PAD;
  }
  return ascii.decode(out);
}

/** `text` must already be padded base64 of length divisible by 4 (checked by the caller). */
export function fromBase64(text: string): Uint8Array {
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  const whole = pad > 0 ? text.length - 4 : text.length;
  const sextet = (i: number) => SEXTETS[text.charCodeAt(i)]!;
  let o = 0;
  let i = 0;
  for (; i < whole; i += 4) {
    const v = (sextet(i) << 18) | (sextet(i + 1) << 12) | (sextet(i + 2) << 6) | sextet(i + 3);
    out[o++] = v >> 16;
    out[o++] = (v >> 8) & 255;
    out[o++] = v & 255;
  }
  if (pad > 0) {
    const v = (sextet(i) << 18) | (sextet(i + 1) << 12) | (pad === 1 ? sextet(i + 2) << 6 : 0);
    out[o++] = v >> 16;
    if (pad === 1) out[o] = (v >> 8) & 255;
  }
  return out;
}

/** Byte-wise equality. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
