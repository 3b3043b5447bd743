import type { Migration } from '../migrations.js';

/**
 * The lineage flow trigger (0003) fires only when its body has something to do:
 * rows reached the mirror (reset the failure count), or a batch or a pause adds
 * to a materialization failure. It fired on every change of rows_received, so
 * each staged batch (the lineage's counter moves, nothing else) ran a PL/pgSQL
 * call that did nothing: ~15 us of PostgreSQL CPU per batch, a tenth of a staged
 * batch's share there in the fan-in. The body is unchanged.
 */
export const lineageFlowTriggerWhen: Migration = {
  version: 16,
  name: 'lineage flow trigger only when it acts',
  sql: `
DROP TRIGGER edge_table_lineages_flow ON edge_table_lineages;
CREATE TRIGGER edge_table_lineages_flow AFTER UPDATE ON edge_table_lineages FOR EACH ROW
  WHEN (NEW.rows_applied > OLD.rows_applied
        OR (NEW.pause_cause = 'materialization_failed'
            AND (NEW.rows_received > OLD.rows_received OR OLD.pause_cause IS DISTINCT FROM 'materialization_failed')))
  EXECUTE FUNCTION syncline_flow_lineage_changed();
`,
};
