import type { Migration } from '../migrations.js';

/**
 * Rows a mirror refused (`row_rejected`), found without reading a lineage's
 * whole backlog: ingest asks on every batch whether its lineage has any (a later
 * change of the same key supersedes them), and a retry reads them in order.
 */
export const rejectedRowsIndex: Migration = {
  version: 15,
  name: 'index of rejected staged rows',
  sql: `
CREATE INDEX edge_staged_rows_rejected ON edge_staged_rows (lineage_id, id) WHERE reason = 'row_rejected';
`,
};
