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
 *   from now on; VACUUM FULL repacks an existing table at once;
 * - the foreign keys of the two tables every batch appends to (the ledger's
 *   device and lineage, a staged row's lineage): a check per row (a lookup and a
 *   row lock, seven for a 5-row staged batch) was a fifth of PostgreSQL's CPU
 *   per batch. The ids come from the lineage row the ingest transaction itself
 *   holds locked (FOR UPDATE) and from the device it authenticated; lineages and
 *   devices are never deleted (a device is revoked), so nothing can dangle.
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
ALTER TABLE edge_export_segments DROP CONSTRAINT edge_export_segments_device_id_fkey, DROP CONSTRAINT edge_export_segments_lineage_id_fkey;
ALTER TABLE edge_staged_rows DROP CONSTRAINT edge_staged_rows_lineage_id_fkey;
`,
};
