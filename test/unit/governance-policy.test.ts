import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { classifySchema, type BoundColumns, type SchemaSnapshot } from '../../src/cloud/governance/classify.js';
import { DEFAULT_POLICY, decidePolicy, governancePolicy, type GovernancePolicy } from '../../src/cloud/governance/policy.js';
import { pgTypeFor, type PgType } from '../../src/cloud/type-mapping.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { keyOf, type Affinity, type ColumnInfo } from '../../src/protocol/schema.js';

const col = (name: string, affinity: Affinity, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, declared_type: affinity, affinity, pk: 0, notnull: false, has_default: false, ...extra });
const snapshot = (...columns: ColumnInfo[]): SchemaSnapshot => ({ columns, key: keyOf(columns) });
const boundTo = (s: SchemaSnapshot | null): BoundColumns => ({ bound: new Map((s?.columns ?? []).map((c) => [c.name, pgTypeFor(c)] as [string, PgType])), ignored: new Set() });
const classify = (previous: SchemaSnapshot | null, incoming: SchemaSnapshot) => classifySchema(boundTo(previous), previous, incoming);

const id = col('id', 'INTEGER', { pk: 1 });
const name = col('name', 'TEXT');
const base = snapshot(id, name);
const additive = snapshot(id, name, col('note', 'TEXT'));
const breaking = snapshot(id);
const rebuilt = snapshot(id, name, col('n', 'INTEGER', { notnull: true }));

describe('governance policy', () => {
  test('defaults: review reviews additive changes, auto follows them, review is the production default', () => {
    assert.deepEqual(governancePolicy('review'), { schema: 'review', additive: 'review' });
    assert.deepEqual(governancePolicy('auto'), { schema: 'auto', additive: 'allow' });
    assert.deepEqual(governancePolicy('auto', 'review'), { schema: 'auto', additive: 'review' });
    assert.deepEqual(DEFAULT_POLICY, { schema: 'review', additive: 'review' });
    assert.throws(() => governancePolicy('yolo' as 'auto'), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config');
    assert.throws(() => governancePolicy('review', 'sometimes' as 'allow'), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config');
  });

  const matrix: { title: string; previous: SchemaSnapshot | null; incoming: SchemaSnapshot; expect: Record<string, string> }[] = [
    { title: 'first schema', previous: null, incoming: base, expect: { 'review/review': 'pause', 'review/allow': 'pause', 'auto/allow': 'provision', 'auto/review': 'provision' } },
    { title: 'same columns', previous: base, incoming: snapshot(name, id), expect: { 'review/review': 'materialize', 'review/allow': 'materialize', 'auto/allow': 'materialize', 'auto/review': 'materialize' } },
    { title: 'nullable column added', previous: base, incoming: additive, expect: { 'review/review': 'pause', 'review/allow': 'add_columns', 'auto/allow': 'add_columns', 'auto/review': 'pause' } },
    { title: 'column dropped', previous: base, incoming: breaking, expect: { 'review/review': 'pause', 'review/allow': 'pause', 'auto/allow': 'pause', 'auto/review': 'pause' } },
    { title: 'NOT NULL column without default added', previous: base, incoming: rebuilt, expect: { 'review/review': 'pause', 'review/allow': 'pause', 'auto/allow': 'pause', 'auto/review': 'pause' } },
  ];
  for (const c of matrix) {
    test(`${c.title}: the action under each policy`, () => {
      for (const [key, action] of Object.entries(c.expect)) {
        const [schema, additivePolicy] = key.split('/') as [GovernancePolicy['schema'], GovernancePolicy['additive']];
        assert.equal(decidePolicy(classify(c.previous, c.incoming), governancePolicy(schema, additivePolicy)).action, action, key);
      }
    });
  }

  test('a paused decision says why, and says when only the additive policy held it back', () => {
    assert.deepEqual(decidePolicy(classify(null, base), DEFAULT_POLICY), { action: 'pause', reason: 'first schema of this table' });
    const added = decidePolicy(classify(base, additive), DEFAULT_POLICY);
    assert.equal(added.action, 'pause');
    if (added.action === 'pause') assert.match(added.reason, /added "note" \(additive changes need a review\)/);
    assert.deepEqual(decidePolicy(classify(base, additive), governancePolicy('review', 'allow')), { action: 'add_columns', columns: [col('note', 'TEXT')] });
  });

  const affinity = fc.constantFrom<Affinity>('INTEGER', 'TEXT', 'REAL', 'BLOB', 'NUMERIC');
  const columns = fc
    .uniqueArray(fc.record({ name: fc.constantFrom('a', 'b', 'c', 'd', 'e'), affinity, notnull: fc.boolean(), has_default: fc.boolean() }), { selector: (c) => c.name, minLength: 1, maxLength: 5 })
    .map((list) => list.map((c, i) => ({ ...c, declared_type: c.affinity, pk: i === 0 ? 1 : 0 })));
  const policy = fc.record({ schema: fc.constantFrom<GovernancePolicy['schema']>('review', 'auto'), additive: fc.constantFrom<GovernancePolicy['additive']>('review', 'allow') });

  test('property: nothing reaches a mirror that the policy did not let through', () => {
    fc.assert(
      fc.property(fc.option(columns, { nil: null }), columns, policy, (before, after, p) => {
        const previous = before && { columns: before, key: keyOf(before) };
        const comparison = classify(previous, { columns: after, key: keyOf(after) });
        const decision = decidePolicy(comparison, p);
        if (comparison.classification === 'breaking') assert.equal(decision.action, 'pause');
        if (p.schema === 'review') assert.notEqual(decision.action, 'provision');
        if (p.additive === 'review') assert.notEqual(decision.action, 'add_columns');
        if (decision.action === 'provision') assert.equal(previous, null);
        if (decision.action === 'materialize') assert.equal(comparison.classification, 'compatible_mapped');
        if (decision.action === 'add_columns') assert.ok(decision.columns.every((c) => !c.notnull || c.has_default));
      }),
      { numRuns: 500 },
    );
  });
});
