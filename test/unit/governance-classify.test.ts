import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { classifySchema, type BoundColumns, type Classification, type SchemaSnapshot } from '../../src/cloud/governance/classify.js';
import { pgTypeFor, type PgType } from '../../src/cloud/type-mapping.js';
import { keyOf, type Affinity, type ColumnInfo } from '../../src/protocol/schema.js';

const col = (name: string, affinity: Affinity, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, declared_type: affinity, affinity, pk: 0, notnull: false, has_default: false, ...extra });
const snapshot = (...columns: ColumnInfo[]): SchemaSnapshot => ({ columns, key: keyOf(columns) });
/** Every column of a snapshot bound with its default type, except the ignored ones. */
const boundTo = (s: SchemaSnapshot, ignored: string[] = [], extra: [string, PgType][] = []): BoundColumns => ({
  bound: new Map([...s.columns.filter((c) => !ignored.includes(c.name)).map((c) => [c.name, pgTypeFor(c)] as [string, PgType]), ...extra]),
  ignored: new Set(ignored),
});
const NOTHING: BoundColumns = { bound: new Map(), ignored: new Set() };

const id = col('id', 'INTEGER', { pk: 1 });
const name = col('name', 'TEXT');
const secret = col('secret', 'BLOB');
const base = snapshot(id, name);
const withSecret = snapshot(id, name, secret);

interface Case {
  title: string;
  decided: BoundColumns;
  previous: SchemaSnapshot | null;
  incoming: SchemaSnapshot;
  classification: Classification;
  /** A pattern, or the exact sentence. */
  summary: RegExp | string;
  expect?: { added?: string[]; dropped?: string[]; retyped?: [string, Affinity, Affinity][]; keyChanged?: boolean; first?: boolean };
}

const HOSTILE = ['x"; DROP TABLE edge_audit_log; --', "Robert'); DELETE FROM projects; --", '__proto__', 'constructor', 'a b\tc', 'ünï "cødé"', 'SELECT'];

const cases: Case[] = [
  { title: 'first schema of a lineage', decided: NOTHING, previous: null, incoming: base, classification: 'ambiguous', summary: /^first schema/, expect: { added: ['id', 'name'], first: true } },
  { title: 'first schema, columns ignored by an approval that deferred others', decided: { bound: new Map([['id', 'bigint']]), ignored: new Set(['secret']) }, previous: null, incoming: withSecret, classification: 'ambiguous', summary: /^first schema/, expect: { added: ['id', 'name'], first: true } },
  { title: 'the same columns', decided: boundTo(base), previous: base, incoming: snapshot(id, name), classification: 'compatible_mapped', summary: /matches/ },
  { title: 'column order changed', decided: boundTo(base), previous: base, incoming: snapshot(name, id), classification: 'compatible_mapped', summary: /matches/ },
  { title: 'declared type text changed, same affinity', decided: boundTo(base), previous: base, incoming: snapshot(id, col('name', 'TEXT', { declared_type: 'VARCHAR(20)' })), classification: 'compatible_mapped', summary: /matches/ },
  { title: 'NOT NULL added to an existing column', decided: boundTo(base), previous: base, incoming: snapshot(id, col('name', 'TEXT', { notnull: true })), classification: 'compatible_mapped', summary: /matches/ },
  { title: 'nullable column added', decided: boundTo(base), previous: base, incoming: snapshot(id, name, col('note', 'TEXT')), classification: 'compatible_additive', summary: /^added "note"$/, expect: { added: ['note'] } },
  { title: 'NOT NULL column with a default added', decided: boundTo(base), previous: base, incoming: snapshot(id, name, col('n', 'INTEGER', { notnull: true, has_default: true })), classification: 'compatible_additive', summary: /^added "n"$/ },
  { title: 'NOT NULL column without a default added (table rebuilt)', decided: boundTo(base), previous: base, incoming: snapshot(id, name, col('n', 'INTEGER', { notnull: true })), classification: 'ambiguous', summary: /"n" is NOT NULL without a default/ },
  { title: 'bound column dropped', decided: boundTo(base), previous: base, incoming: snapshot(id), classification: 'breaking', summary: /dropped "name"/, expect: { dropped: ['name'] } },
  { title: 'ignored column dropped', decided: boundTo(withSecret, ['secret']), previous: withSecret, incoming: base, classification: 'compatible_mapped', summary: /matches/ },
  { title: 'bound column changed affinity', decided: boundTo(base), previous: base, incoming: snapshot(id, col('name', 'INTEGER')), classification: 'breaking', summary: /changed affinity of "name" \(TEXT to INTEGER\)/, expect: { retyped: [['name', 'TEXT', 'INTEGER']] } },
  { title: 'ignored column changed affinity', decided: boundTo(withSecret, ['secret']), previous: withSecret, incoming: snapshot(id, name, col('secret', 'TEXT')), classification: 'compatible_mapped', summary: /matches/ },
  { title: 'an ignored column still sent is not added', decided: boundTo(withSecret, ['secret']), previous: base, incoming: withSecret, classification: 'compatible_mapped', summary: /matches/ },
  { title: 'key moved to another column', decided: boundTo(base), previous: base, incoming: snapshot(col('id', 'INTEGER'), col('name', 'TEXT', { pk: 1 })), classification: 'breaking', summary: /key changed from \("id"\) to \("name"\)/, expect: { keyChanged: true } },
  { title: 'key widened to a composite', decided: boundTo(base), previous: base, incoming: snapshot(id, col('name', 'TEXT', { pk: 2 })), classification: 'breaking', summary: /key changed/ },
  { title: 'key columns reordered', decided: boundTo(snapshot(id, col('name', 'TEXT', { pk: 2 }))), previous: snapshot(id, col('name', 'TEXT', { pk: 2 })), incoming: snapshot(col('id', 'INTEGER', { pk: 2 }), col('name', 'TEXT', { pk: 1 })), classification: 'breaking', summary: /key changed/ },
  { title: 'primary key dropped (rowid key)', decided: boundTo(base), previous: base, incoming: snapshot(col('id', 'INTEGER'), name), classification: 'breaking', summary: /key changed from \("id"\) to \("rowid"\)/ },
  { title: 'a column renamed (dropped plus added)', decided: boundTo(base), previous: base, incoming: snapshot(id, col('title', 'TEXT')), classification: 'breaking', summary: /dropped "name"/, expect: { dropped: ['name'], added: ['title'] } },
  { title: 'breaking and additive at once: breaking, every problem named', decided: boundTo(snapshot(id, name, col('x', 'REAL'))), previous: snapshot(id, name, col('x', 'REAL')), incoming: snapshot(id, col('x', 'TEXT'), col('new', 'TEXT')), classification: 'breaking', summary: /dropped "name"; changed affinity of "x" \(REAL to TEXT\)/, expect: { dropped: ['name'], retyped: [['x', 'REAL', 'TEXT']], added: ['new'] } },
  { title: 'a column neither bound nor ignored (left for later)', decided: boundTo(base, [], []), previous: withSecret, incoming: withSecret, classification: 'ambiguous', summary: /"secret" is neither mirrored nor ignored/ },
  { title: 'a bound column comes back with an affinity its mirror column holds', decided: boundTo(withSecret), previous: base, incoming: withSecret, classification: 'compatible_mapped', summary: /matches/ },
  { title: 'a bound column comes back with an affinity its mirror column cannot hold', decided: boundTo(withSecret), previous: base, incoming: snapshot(id, name, col('secret', 'INTEGER')), classification: 'ambiguous', summary: /"secret" returns as INTEGER, its mirror column is bytea/ },
  ...HOSTILE.map((hostile): Case => ({
    title: `hostile column name ${JSON.stringify(hostile)} is only a name`,
    decided: boundTo(base),
    previous: base,
    incoming: snapshot(id, name, col(hostile, 'TEXT')),
    classification: 'compatible_additive',
    summary: `added ${JSON.stringify(hostile)}`,
    expect: { added: [hostile] },
  })),
];

describe('schema classification (bindings, previous schema, incoming schema)', () => {
  for (const c of cases) {
    test(c.title, () => {
      const result = classifySchema(c.decided, c.previous, c.incoming);
      assert.equal(result.classification, c.classification, result.summary);
      if (typeof c.summary === 'string') assert.equal(result.summary, c.summary);
      else assert.match(result.summary, c.summary);
      if (c.expect?.added) assert.deepEqual(result.added.map((a) => a.name), c.expect.added);
      if (c.expect?.dropped) assert.deepEqual(result.dropped, c.expect.dropped);
      if (c.expect?.retyped) assert.deepEqual(result.retyped.map((r) => [r.name, r.from, r.to]), c.expect.retyped);
      if (c.expect?.keyChanged !== undefined) assert.equal(result.keyChanged, c.expect.keyChanged);
      assert.equal(result.first, c.expect?.first ?? false);
    });
  }

  const affinity = fc.constantFrom<Affinity>('INTEGER', 'TEXT', 'REAL', 'BLOB', 'NUMERIC');
  const columns = fc
    .uniqueArray(fc.record({ name: fc.constantFrom('a', 'b', 'c', 'd', 'e'), affinity, notnull: fc.boolean(), has_default: fc.boolean() }), { selector: (c) => c.name, minLength: 1, maxLength: 5 })
    .map((list) => list.map((c, i) => ({ ...c, declared_type: c.affinity, pk: i === 0 ? 1 : 0 })));

  test('property: the classification follows from the parts it reports', () => {
    fc.assert(
      fc.property(columns, columns, fc.subarray(['b', 'c', 'd', 'e']), (before, after, ignoredNames) => {
        const previous = { columns: before, key: keyOf(before) };
        const decided = boundTo(previous, ignoredNames.filter((n) => before.some((c) => c.name === n && c.pk === 0)));
        const result = classifySchema(decided, previous, { columns: after, key: keyOf(after) });
        const breaking = result.keyChanged || result.dropped.length > 0 || result.retyped.length > 0;
        assert.equal(result.classification === 'breaking', breaking);
        if (!breaking) assert.equal(result.classification === 'ambiguous', result.unclear.length > 0);
        if (result.classification === 'compatible_mapped') assert.deepEqual(result.added, []);
        assert.ok(result.added.every((c) => !decided.bound.has(c.name) && !decided.ignored.has(c.name)));
        assert.ok(result.dropped.every((n) => decided.bound.has(n)), 'an ignored column never counts as dropped');
      }),
      { numRuns: 500 },
    );
  });
});
