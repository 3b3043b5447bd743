import type { Migration } from '../migrations.js';

/**
 * Less PostgreSQL work per ingested batch (fan-in of small batches):
 * - two indexes no query reads, each written on every batch: the ledger by
 *   (lineage, received_at) and staged rows by (lineage, epoch, seq); every read of
 *   staged rows goes by (lineage_id, id) (edge_staged_rows_replay);
 * - room on each page of the rows rewritten all the time (a lineage on every
 *   batch, its flow row on every staged batch, a device's last_seen_at every few
 *   seconds), so the new version fits next to the old one: a HOT update, which
 *   writes none of the table's indexes. Full pages sent most lineage updates to
 *   another page and through all three of its indexes. Applies to pages written
 *   from now on; VACUUM FULL repacks an existing table at once.
 */
export const ingestWriteCost: Migration = {
  version: 17,
  name: 'ingest write cost',
  sql: `
DROP INDEX edge_export_segments_lineage;
DROP INDEX edge_staged_rows_lineage;
ALTER TABLE edge_table_lineages SET (fillfactor = 50);
ALTER TABLE edge_lineage_flow SET (fillfactor = 50);
ALTER TABLE devices SET (fillfactor = 70);
`,
};
