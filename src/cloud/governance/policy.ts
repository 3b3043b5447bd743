import type { ColumnInfo } from '../../protocol/schema.js';
import { SynclineError } from '../../protocol/errors.js';
import type { SchemaComparison } from './classify.js';

/** Staged rows replayed per transaction after an approval (here, not in replay.ts, so `server --help` can show it cheaply). */
export const REPLAY_CHUNK_ROWS = 5000;

/**
 * `review`: every first schema and every change that is not a plain match waits
 * for an operator. `auto`: the first schema is mirrored with all its columns;
 * breaking and unclear changes still wait for an operator.
 */
export type SchemaPolicy = 'auto' | 'review';
/** Whether a change that only adds nullable (or defaulted) columns is followed without a review. */
export type AdditivePolicy = 'allow' | 'review';

export const SCHEMA_POLICIES: readonly SchemaPolicy[] = ['review', 'auto'];
export const ADDITIVE_POLICIES: readonly AdditivePolicy[] = ['review', 'allow'];

export interface GovernancePolicy {
  schema: SchemaPolicy;
  additive: AdditivePolicy;
}

/**
 * The policy for a schema policy name. Unless told otherwise, `review` also
 * reviews additive changes (the production default: nothing reaches a mirror
 * unseen) and `auto` follows them.
 */
export function governancePolicy(schema: SchemaPolicy, additive?: AdditivePolicy): GovernancePolicy {
  if (!SCHEMA_POLICIES.includes(schema)) throw new SynclineError('invalid_config', `unknown schema policy ${JSON.stringify(String(schema))}; use review or auto`);
  if (additive !== undefined && !ADDITIVE_POLICIES.includes(additive)) {
    throw new SynclineError('invalid_config', `unknown additive policy ${JSON.stringify(String(additive))}; use review or allow`);
  }
  return { schema, additive: additive ?? (schema === 'auto' ? 'allow' : 'review') };
}

/** What ingest uses when the caller names no policy: the production default. */
export const DEFAULT_POLICY: GovernancePolicy = governancePolicy('review');

/**
 * What a policy does with a comparison: `materialize` as bound, mirror every
 * column of a first schema (`provision`) or the added ones (`add_columns`)
 * without a review, or `pause`: stage the rows and open a review. Nothing is
 * ever dropped.
 */
export type PolicyAction =
  | { action: 'materialize' }
  | { action: 'provision' }
  | { action: 'add_columns'; columns: ColumnInfo[] }
  | { action: 'pause'; reason: string };

export function decidePolicy(comparison: SchemaComparison, policy: GovernancePolicy): PolicyAction {
  switch (comparison.classification) {
    case 'compatible_mapped':
      return { action: 'materialize' };
    case 'compatible_additive':
      return policy.additive === 'allow' ? { action: 'add_columns', columns: comparison.added } : { action: 'pause', reason: `${comparison.summary} (additive changes need a review)` };
    case 'ambiguous':
      // A first schema with a problem (a table too wide) waits for an operator even under `auto`.
      if (comparison.first && comparison.unclear.length > 0) return { action: 'pause', reason: comparison.summary };
      if (comparison.first) return policy.schema === 'auto' ? { action: 'provision' } : { action: 'pause', reason: 'first schema of this table' };
      return { action: 'pause', reason: comparison.summary };
    case 'breaking':
      return { action: 'pause', reason: comparison.summary };
  }
}
