import type { ReviewDetailAnswer } from '../protocol/admin-answers.js';
import { formatTable } from './output.js';

const SAMPLES_SHOWN = 5;
const names = (list: readonly string[]) => (list.length > 0 ? list.join(', ') : '-');

/** A review as an operator reads it before deciding: what it is, the columns, what changed, what waits, what happened. */
export function formatReview(review: ReviewDetailAnswer): string {
  const head = (['id', 'status', 'action_version', 'classification', 'origin', 'summary', 'claimed_by', 'decided_by'] as const).map((field): { field: string; value: unknown } => ({ field, value: review[field] }));
  head.push({ field: 'lineage', value: `${String(review.lineage.source_table)} on device ${String(review.lineage.device_id)} (${String(review.lineage.status)}${review.lineage.pause_cause ? `: ${String(review.lineage.pause_cause)}` : ''})` });
  const toDecide = new Set(review.columns_to_decide);
  const decided = review.schema.columns.filter((c) => !toDecide.has(c.name)).map((c) => c.name);
  const columns = review.schema.columns.filter((c) => toDecide.has(c.name)).map((c) => ({
    ...c,
    mirror_column: c.binding ? `${c.binding.target_column} ${c.binding.pg_type}` : '',
    mirror_default: `${c.default_mirror.target_column} ${c.default_mirror.pg_type}`,
    mirror_as_types: c.safe_types.join('|'),
  }));
  const { diff } = review;
  const changes = [
    `against bound schema: ${diff.bound_schema_hash ? diff.bound_schema_hash.slice(0, 12) : '(none: first schema)'}`,
    `  added:   ${names(diff.added)}`,
    `  dropped: ${names(diff.dropped)}`,
    `  retyped: ${names(diff.retyped.map((r) => `${r.name} ${r.from}->${r.to}`))}`,
    `  key:     ${diff.key ? `(${diff.key.from.columns.join(', ')}) -> (${diff.key.to.columns.join(', ')})` : 'unchanged'}`,
    ...(diff.unclear.length > 0 ? [`  unclear: ${diff.unclear.join('; ')}`] : []),
  ];
  const reasons = review.staged.by_reason.map((r) => `${r.rows} ${r.reason}`).join(', ');
  return [
    formatTable(head),
    '',
    formatTable(columns, ['name', 'declared_type', 'affinity', 'pk', 'notnull', 'state', 'mirror_column', 'mirror_default', 'mirror_as_types']),
    ...(decided.length > 0 ? [`decided before (kept unless named again): ${decided.join(', ')}`] : []),
    '',
    ...changes,
    '',
    `staged rows: ${review.staged.rows}${reasons ? ` (${reasons})` : ''}; first ${Math.min(SAMPLES_SHOWN, review.staged.samples.length)} of this schema:`,
    formatTable(review.staged.samples.slice(0, SAMPLES_SHOWN), ['seq', 'op', 'pk', 'values']),
    '',
    formatTable(review.events.map((e) => ({ ...e, detail: undefined })), ['at', 'actor', 'action']),
  ].join('\n');
}
