import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { planColumns, type ColumnAction, type MirrorState } from '../../src/cloud/governance/column-plan.js';
import { SAFE_CASTS, safeTypesFor } from '../../src/cloud/governance/safe-casts.js';
import type { Binding } from '../../src/cloud/ingest/mirror-schema.js';
import { PG_TYPES, type PgType } from '../../src/cloud/type-mapping.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { keyOf, type Affinity, type ColumnInfo } from '../../src/protocol/schema.js';

const col = (name: string, affinity: Affinity, extra: Partial<ColumnInfo> = {}): ColumnInfo => ({ name, declared_type: affinity, affinity, pk: 0, notnull: false, has_default: false, ...extra });
const schemaOf = (...columns: ColumnInfo[]) => ({ columns, key: keyOf(columns) });
const b = (source: string, target: string, pg: PgType): Binding => ({ source_column: source, target_column: target, pg_type: pg });
const EMPTY: MirrorState = { bindings: new Map(), ignored: new Set(), physical: new Map(), shared: false };
const refused = (message?: RegExp) => (e: unknown) => e instanceof SynclineError && e.code === 'invalid_request' && (!message || message.test(e.message));
const m = (name: string): ColumnAction => ({ name, action: 'mirror' });

const id = col('id', 'INTEGER', { pk: 1 });
const name = col('name', 'TEXT');
const secret = col('secret', 'TEXT');
const schema = schemaOf(id, name, secret, col('n', 'NUMERIC'), col('any', 'BLOB', { declared_type: '' }));

describe('column plan', () => {
  test('a new mirror: mirror, mirror_as (name and safe type), ignore, defer', () => {
    const actions: ColumnAction[] = [m('id'), { name: 'name', action: 'mirror_as', target: 'full_name' }, { name: 'secret', action: 'ignore' }, { name: 'n', action: 'mirror_as', pg_type: 'jsonb' }, { name: 'any', action: 'defer' }];
    const plan = planColumns(schema, EMPTY, actions, 'fresh');
    assert.deepEqual(plan.bindings, [b('id', 'id', 'bigint'), b('name', 'full_name', 'text'), b('n', 'n', 'jsonb')]);
    assert.deepEqual([plan.ignored, plan.deferred], [['secret'], ['any']]);
  });

  test('every incoming column needs exactly one action; the missing ones are named', () => {
    assert.throws(() => planColumns(schema, EMPTY, [m('id'), m('name')], 'fresh'), refused(/missing "secret", "n", "any"/));
    assert.throws(() => planColumns(schema, EMPTY, [], 'fresh'), refused(/every incoming column needs an action/));
  });

  test('mirror_as takes only casts that keep every value of the affinity', () => {
    for (const affinity of ['INTEGER', 'REAL', 'NUMERIC', 'TEXT', 'BLOB'] as const) {
      const column = col('v', affinity);
      for (const type of PG_TYPES) {
        const run = () => planColumns(schemaOf(id, column), EMPTY, [m('id'), { name: 'v', action: 'mirror_as', pg_type: type }], 'fresh');
        if (SAFE_CASTS[affinity].includes(type)) assert.equal(run().bindings[1]!.pg_type, type, `${affinity} as ${type}`);
        else assert.throws(run, refused(new RegExp(`${type} is not a safe cast for "v" \\(${affinity}\\)`)), `${affinity} as ${type}`);
      }
    }
    assert.deepEqual(safeTypesFor(col('any', 'BLOB', { declared_type: '' })), ['jsonb', 'bytea'], 'an untyped column defaults to jsonb');
    assert.throws(() => planColumns(schemaOf(id, name), EMPTY, [m('id'), { name: 'name', action: 'mirror_as' }], 'fresh'), refused(/needs a target, a pg_type or both/));
  });

  // Names an operator (or a script) might send in actions: refused when unusable, otherwise only ever quoted.
  const hostileTargets: [string, RegExp | null][] = [
    ['x"; DROP TABLE edge_audit_log; --', null],
    ["Robert'); DELETE FROM projects; --", null],
    ['__proto__', null],
    ['name with spaces', null],
    ['ünï "cødé"', null],
    ['_syncline_seq', /reserved prefix/],
    ['_SYNCLINE_op', /reserved prefix/],
    ['x'.repeat(64), /longer than 63 bytes/],
    ['é'.repeat(32), /longer than 63 bytes/],
    ['nul\u0000byte', /contains NUL/],
    ['lone \uD800 surrogate', /not well-formed/],
    ['', /is empty/],
  ];
  for (const [target, refusal] of hostileTargets) {
    test(`mirror_as target ${JSON.stringify(target.slice(0, 40))}: ${refusal ? 'refused' : 'kept verbatim, to be quoted'}`, () => {
      const run = () => planColumns(schemaOf(id, name), EMPTY, [m('id'), { name: 'name', action: 'mirror_as', target }], 'fresh');
      if (refusal) assert.throws(run, refused(refusal));
      else assert.deepEqual(run().bindings[1], b('name', target, 'text'));
    });
  }

  const hostileNames = ['x"; DROP TABLE t; --', 'not_in_schema', 'NAME', 'name ', '__proto__'];
  for (const bogus of hostileNames) {
    test(`an action naming ${JSON.stringify(bogus)}, which the schema lacks, is refused`, () => {
      assert.throws(() => planColumns(schemaOf(id, name), EMPTY, [m('id'), m('name'), { name: bogus, action: 'ignore' }], 'fresh'), refused(/is not in the reviewed schema/));
    });
  }

  test('refuses repeated columns, ignored or deferred keys and shared targets', () => {
    const s = schemaOf(id, name, secret);
    const cases: [ColumnAction[], RegExp][] = [
      [[m('id'), m('name'), m('name'), m('secret')], /listed twice/],
      [[{ name: 'id', action: 'ignore' }, m('name'), m('secret')], /key column "id" cannot be ignored/],
      [[{ name: 'id', action: 'defer' }, m('name'), m('secret')], /key column "id" cannot be deferred/],
      [[m('id'), { name: 'name', action: 'mirror_as', target: 'secret' }, m('secret')], /would share mirror column "secret"/],
    ];
    for (const [actions, message] of cases) assert.throws(() => planColumns(s, EMPTY, actions, 'fresh'), refused(message), message.source);
  });

  const existing: MirrorState = {
    bindings: new Map([['id', b('id', 'id', 'bigint')], ['name', b('name', 'name', 'text')], ['age', b('age', 'age', 'bigint')]]),
    ignored: new Set(['secret']),
    physical: new Map([['id', 'bigint'], ['name', 'text'], ['age', 'bigint'], ['old', 'text']]),
    shared: false,
  };

  test('altering: bound columns stay, new ones are added, ignored ones stay ignored', () => {
    const plan = planColumns(schemaOf(id, name, secret, col('note', 'TEXT')), existing, [m('id'), m('name'), { name: 'secret', action: 'ignore' }, m('note')], 'alter');
    assert.deepEqual([plan.upserts, plan.addColumns, plan.ignored, plan.unbind, plan.unignore], [[b('note', 'note', 'text')], [b('note', 'note', 'text')], ['secret'], [], []]);
  });

  test('altering: a retyped column needs mirror_as into a new column of a safe type; the old column stays', () => {
    const retyped = schemaOf(id, name, col('age', 'TEXT'));
    assert.throws(() => planColumns(retyped, existing, [m('id'), m('name'), m('age')], 'alter'), refused(/"age" is now TEXT but its mirror column "age" is bigint; use mirror_as/));
    assert.throws(() => planColumns(retyped, existing, [m('id'), m('name'), { name: 'age', action: 'mirror_as', pg_type: 'text' }], 'alter'), refused(/already exists as bigint, not text/));
    const plan = planColumns(retyped, existing, [m('id'), m('name'), { name: 'age', action: 'mirror_as', target: 'age_text', pg_type: 'text' }], 'alter');
    assert.deepEqual([plan.upserts, plan.addColumns], [[b('age', 'age_text', 'text')], [b('age', 'age_text', 'text')]]);
  });

  test('altering: names of columns kept from earlier decisions are taken', () => {
    const s = schemaOf(id, name, col('fresh', 'TEXT'));
    assert.throws(() => planColumns(s, existing, [m('id'), m('name'), { name: 'fresh', action: 'mirror_as', target: 'old' }], 'alter'), refused(/"old" already exists; choose another name/));
    assert.throws(() => planColumns(s, existing, [m('id'), m('name'), { name: 'fresh', action: 'mirror_as', target: 'age' }], 'alter'), refused(/would share/), 'a dropped-but-bound column keeps its name');
  });

  test('altering: ignoring a bound column unbinds it; mirroring an ignored one rebinds it; deferring leaves it alone', () => {
    const withSecretColumn: MirrorState = { ...existing, physical: new Map([...existing.physical, ['secret', 'text']]) };
    const plan = planColumns(schemaOf(id, name, secret, col('later', 'TEXT')), withSecretColumn, [m('id'), { name: 'name', action: 'ignore' }, m('secret'), { name: 'later', action: 'defer' }], 'alter');
    assert.deepEqual([plan.unbind, plan.unignore, plan.upserts, plan.addColumns, plan.deferred], [['name'], ['secret'], [b('secret', 'secret', 'text')], [], ['later']]);
  });

  test('altering: key columns cannot move', () => {
    assert.throws(() => planColumns(schemaOf(id, name), existing, [{ name: 'id', action: 'mirror_as', target: 'ident' }, m('name')], 'alter'), refused(/key column "id" cannot move/));
  });

  test('a new mirror after a key change takes earlier targets as the defaults of mirror', () => {
    const site = col('site', 'TEXT', { pk: 2 });
    const renamed: MirrorState = { ...existing, bindings: new Map([...existing.bindings, ['name', b('name', 'label', 'text')]]) };
    const plan = planColumns(schemaOf(id, name, secret, site), renamed, [m('id'), m('name'), { name: 'secret', action: 'ignore' }, m('site')], 'fresh');
    assert.deepEqual(plan.bindings, [b('id', 'id', 'bigint'), b('name', 'label', 'text'), b('site', 'site', 'text')]);
  });

  test('joining a coalesced mirror: its columns are shared by type, its key columns fixed', () => {
    const shared: MirrorState = { ...EMPTY, physical: new Map([['id', 'bigint'], ['label', 'text'], ['qty', 'bigint']]), shared: true, keyTargets: ['id'] };
    const plan = planColumns(schemaOf(id, name, col('qty', 'INTEGER'), col('extra', 'REAL')), shared, [m('id'), { name: 'name', action: 'mirror_as', target: 'label' }, m('qty'), m('extra')], 'fresh');
    assert.deepEqual(plan.addColumns, [b('extra', 'extra', 'double precision')]);
    assert.throws(() => planColumns(schemaOf(id, col('qty', 'TEXT')), shared, [m('id'), m('qty')], 'fresh'), refused(/"qty" already exists as bigint, not text/));
    assert.throws(() => planColumns(schemaOf(id, name), shared, [{ name: 'id', action: 'mirror_as', target: 'ident' }, m('name')], 'fresh'), refused(/key column "id" must go to "id"/));
  });
});
