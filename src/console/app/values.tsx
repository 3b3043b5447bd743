import type { WireValueAnswer } from '../../protocol/admin-answers.js';

const HEX_PREVIEW_BYTES = 16;

function blobText(base64: string): { hex: string; bytes: number } {
  const raw = atob(base64);
  let hex = '';
  for (let i = 0; i < Math.min(raw.length, HEX_PREVIEW_BYTES); i++) hex += raw.charCodeAt(i).toString(16).padStart(2, '0');
  return { hex: raw.length > HEX_PREVIEW_BYTES ? `${hex}…` : hex, bytes: raw.length };
}

/**
 * One value exactly as stored: NULL as NULL (not an empty cell), integers beyond
 * 2^53 from their exact digits, reals from their exact text, blobs as hex with
 * their size, text as text (whitespace kept visible by the stylesheet).
 */
export function Value({ value }: { value: WireValueAnswer | undefined }) {
  if (value === null || value === undefined) return <span class="v-null">NULL</span>;
  if (typeof value === 'number') return <span class="v-num">{String(value)}</span>;
  if (typeof value === 'string') return <span class="v-text">{value}</span>;
  if ('$int' in value) return <span class="v-num" title="integer">{value.$int}</span>;
  if ('$real' in value) return <span class="v-num" title="real">{value.$real}</span>;
  const blob = blobText(value.$blob);
  return (
    <span class="v-blob" title={`blob, ${blob.bytes} bytes`}>
      x'{blob.hex}' <small>({blob.bytes} B)</small>
    </span>
  );
}
