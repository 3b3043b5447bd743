/**
 * Whether every row of a mirror fits in one PostgreSQL heap row.
 *
 * PostgreSQL stores a row in one 8 kB page (at most 8,160 bytes with its header)
 * and cannot split it. Long text, blob and JSON values move out of line (TOAST) and
 * leave at most 24 bytes behind (a value of 24 bytes or less is never moved), but
 * fixed-width values always stay. So the widest row a mirror can get is its header
 * plus 8 bytes per bigint, double or timestamp, 16 per uuid and 24 per variable-width
 * column. A table whose widest row does not fit is refused before any DDL: some of
 * its rows could never be stored. The operator ignores columns until it fits.
 */
export const MAX_ROW_BYTES = 8160;

const HEADER_BYTES = 23;
/** The most a variable-width value keeps inline once TOAST has moved what it can. */
const VARIABLE_INLINE_BYTES = 24;

/** Width and alignment of a fixed-width column type as PostgreSQL spells it; undefined for variable-width ones. */
function fixedWidth(type: string): { width: number; align: number } | undefined {
  switch (type) {
    case 'bigint':
    case 'double precision':
    case 'timestamp with time zone':
    case 'timestamptz':
      return { width: 8, align: 8 };
    case 'uuid':
      return { width: 16, align: 1 };
    default:
      return undefined;
  }
}

const alignUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** The widest row a table of these column types (in column order, every column set) can take. */
export function widestRowBytes(types: readonly string[]): number {
  let size = alignUp(HEADER_BYTES + Math.ceil(types.length / 8), 8);
  for (const type of types) {
    const fixed = fixedWidth(type);
    size = fixed ? alignUp(size, fixed.align) + fixed.width : size + VARIABLE_INLINE_BYTES;
  }
  return size;
}

/** Why a table of these column types is too wide, or null when its widest row fits. */
export function tooWideReason(types: readonly string[]): string | null {
  const widest = widestRowBytes(types);
  if (widest <= MAX_ROW_BYTES) return null;
  return `a mirror row of these ${types.length} columns can take ${widest} bytes, more than the ${MAX_ROW_BYTES} PostgreSQL holds in one row; ignore some columns`;
}
