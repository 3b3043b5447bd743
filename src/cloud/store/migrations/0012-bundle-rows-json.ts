import type { Migration } from '../migrations.js';

/**
 * A bundle row's values are stored as `json` (the text as written), not `jsonb`.
 * Nothing queries inside them: they are written once (by a push or by the capture
 * trigger on a backend's write) and read back whole by pulls. Building jsonb
 * parses the text a second time, which measured as much as building the JSON
 * itself and was the largest single cost capture added to a backend's INSERT.
 */
export const bundleRowsJson: Migration = {
  version: 12,
  name: 'bundle rows as json',
  sql: `ALTER TABLE sync_bundle_rows ALTER COLUMN row TYPE json USING row::json;`,
};
