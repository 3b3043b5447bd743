import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseSharedConfig, parentFirst } from '../../src/cloud/shared/declarations.js';
import { SynclineError } from '../../src/protocol/errors.js';
import { sharedTableSchema, type SharedTable } from '../../src/protocol/shared-sync.js';

/** A minimal valid table: key id INTEGER, one more column. */
function table(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name,
    direction: 'both',
    key: ['id'],
    columns: [
      { name: 'id', type: 'INTEGER' },
      { name: 'v', type: 'TEXT' },
    ],
    ...extra,
  };
}

function problemsOf(tables: unknown[]): string[] {
  try {
    parseSharedConfig({ tables });
  } catch (error) {
    assert.ok(error instanceof SynclineError, `expected a SynclineError, got ${String(error)}`);
    assert.equal(error.code, 'invalid_config');
    const problems = error.context.problems;
    assert.ok(Array.isArray(problems), 'the refusal lists its problems');
    for (const problem of problems as string[]) assert.ok(error.message.includes(problem), 'the message carries every problem');
    return problems as string[];
  }
  assert.fail('expected the config to be refused');
}

/** Problems that name table `name` (as `table "<name>"`). */
function naming(problems: readonly string[], name: string): string[] {
  return problems.filter((p) => p.startsWith(`table ${JSON.stringify(name)}`));
}

interface RefusalCase {
  title: string;
  tables: unknown[];
  /** The table every problem names. */
  names: string;
  pattern: RegExp;
}

const NUL_NAME = 'bad\u0000name';
const LONG_BYTES = 'é'.repeat(32); // 32 characters, 64 UTF-8 bytes

const refusals: RefusalCase[] = [
  { title: 'a table declared twice', tables: [table('a'), table('a')], names: 'a', pattern: /declared twice/ },
  { title: 'a NUL in the table name', tables: [table(NUL_NAME)], names: NUL_NAME, pattern: /contains NUL/ },
  { title: 'a table name over 63 bytes', tables: [table(LONG_BYTES)], names: LONG_BYTES, pattern: /longer than 63 bytes/ },
  { title: 'a table name over 63 characters (schema limit)', tables: [table('t'.repeat(64))], names: 't'.repeat(64), pattern: /63/ },
  { title: 'the reserved _syncline_ prefix', tables: [table('_syncline_mine')], names: '_syncline_mine', pattern: /reserved prefix _syncline_/ },
  { title: 'the reserved prefix in another case', tables: [table('_SYNCLINE_Mine')], names: '_SYNCLINE_Mine', pattern: /reserved prefix/ },
  { title: 'a sqlite_ table name', tables: [table('sqlite_stat1')], names: 'sqlite_stat1', pattern: /SQLite internal/ },
  { title: 'a SQLITE_ table name in upper case', tables: [table('SQLITE_x')], names: 'SQLITE_x', pattern: /SQLite internal/ },
  {
    title: 'a column with the reserved prefix',
    tables: [table('a', { columns: [{ name: 'id', type: 'INTEGER' }, { name: '_syncline_x', type: 'TEXT' }] })],
    names: 'a',
    pattern: /column name "_syncline_x" uses the reserved prefix/,
  },
  {
    title: 'a column declared twice',
    tables: [table('a', { columns: [{ name: 'id', type: 'INTEGER' }, { name: 'v', type: 'TEXT' }, { name: 'v', type: 'INTEGER' }] })],
    names: 'a',
    pattern: /declares a column twice/,
  },
  { title: 'a key column that is not declared', tables: [table('a', { key: ['nope'] })], names: 'a', pattern: /key column "nope" is not a declared column/ },
  {
    title: 'a REAL key',
    tables: [table('a', { key: ['r'], columns: [{ name: 'r', type: 'REAL' }] })],
    names: 'a',
    pattern: /key column "r" has type REAL; keys are INTEGER, TEXT, BLOB, UUID/,
  },
  { title: 'a key column named twice', tables: [table('a', { key: ['id', 'id'] })], names: 'a', pattern: /names a key column twice/ },
  {
    title: 'a reference to an undeclared table',
    tables: [table('child', { references: [{ columns: ['id'], table: 'ghost' }] })],
    names: 'child',
    pattern: /reference \["id"\] -> "ghost" names a table that is not declared/,
  },
  {
    title: 'a reference wider than the parent key',
    tables: [table('parent'), table('child', { references: [{ columns: ['id', 'v'], table: 'parent' }] })],
    names: 'child',
    pattern: /has 2 columns but parent's key has 1/,
  },
  {
    title: 'a reference whose column type differs from the parent key',
    tables: [table('parent'), table('child', { references: [{ columns: ['v'], table: 'parent' }] })],
    names: 'child',
    pattern: /v is TEXT but parent\.id is INTEGER/,
  },
  {
    title: 'a reference through a column that is not declared',
    tables: [table('parent'), table('child', { references: [{ columns: ['missing'], table: 'parent' }] })],
    names: 'child',
    pattern: /uses "missing", which is not a declared column/,
  },
  {
    title: 'a pulled child referencing a parent that is never pulled',
    tables: [table('parent', { direction: 'up' }), table('child', { direction: 'down', references: [{ columns: ['id'], table: 'parent' }] })],
    names: 'child',
    pattern: /rows pulled to devices would reference rows the devices never receive \(parent is direction up\)/,
  },
  {
    title: 'a pushed child referencing a parent devices cannot push',
    tables: [table('parent', { direction: 'down' }), table('child', { direction: 'up', references: [{ columns: ['id'], table: 'parent' }] })],
    names: 'child',
    pattern: /devices push this table but cannot push parent/,
  },
  {
    title: 'a reference to a table that does not sync',
    tables: [table('parent', { direction: 'none' }), table('child', { references: [{ columns: ['id'], table: 'parent' }] })],
    names: 'child',
    pattern: /does not sync \(direction none\)/,
  },
  {
    title: 'mixed scope kinds',
    tables: [table('mine'), table('ours', { scope: 'tenant' })],
    names: 'ours',
    pattern: /scope tenant differs from other tables' scope user/,
  },
  { title: 'an unknown direction', tables: [table('a', { direction: 'sideways' })], names: 'a', pattern: /direction/ },
  { title: 'an unknown conflict policy', tables: [table('a', { conflict: 'coin_flip' })], names: 'a', pattern: /conflict/ },
  { title: 'an unknown tiebreak', tables: [table('a', { tiebreak: 'merge_columns' })], names: 'a', pattern: /tiebreak/ },
  { title: 'an unknown column type', tables: [table('a', { columns: [{ name: 'id', type: 'DECIMAL' }] })], names: 'a', pattern: /type/ },
  { title: 'an unknown property', tables: [table('a', { colour: 'red' })], names: 'a', pattern: /colour/ },
  { title: 'no columns', tables: [table('a', { columns: [] })], names: 'a', pattern: /columns/ },
];

describe('parseSharedConfig refusals', () => {
  for (const c of refusals) {
    test(`${c.title}: refused, naming its table`, () => {
      const problems = problemsOf(c.tables);
      assert.ok(problems.length >= 1);
      for (const problem of problems) {
        assert.ok(problem.startsWith(`table ${JSON.stringify(c.names)}`), `problem does not name table ${JSON.stringify(c.names)}: ${problem}`);
      }
      assert.ok(
        problems.some((p) => c.pattern.test(p)),
        `no problem matches ${c.pattern}: ${JSON.stringify(problems)}`,
      );
    });
  }

  test('a table whose name is not even a string is named by its position', () => {
    const problems = problemsOf([table('fine'), { ...table('x'), name: 42 }]);
    assert.equal(problems.length, 1);
    assert.match(problems[0]!, /^tables\[1\]: .*name/);
  });

  test('the file itself must have tables', () => {
    assert.throws(() => parseSharedConfig({ tables: [] }), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config');
    assert.throws(() => parseSharedConfig({}), (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config');
    assert.throws(() => parseSharedConfig({ tables: [table('a')], surprise: 1 }), (e: unknown) => e instanceof SynclineError && /surprise/.test(e.message));
  });

  test('several problems in one config are all reported at once, each naming its table', () => {
    const problems = problemsOf([
      table('dup'),
      table('dup'),
      table('sqlite_master'),
      table('keyless', { key: ['nope'] }),
      table('real_key', { key: ['r'], columns: [{ name: 'r', type: 'REAL' }] }),
      table('orphan', { references: [{ columns: ['id'], table: 'ghost' }] }),
      table('narrow', { references: [{ columns: ['v'], table: 'dup' }] }),
      table('tenanted', { scope: 'tenant' }),
    ]);
    const expected: [string, RegExp][] = [
      ['dup', /declared twice/],
      ['sqlite_master', /SQLite internal/],
      ['keyless', /not a declared column/],
      ['real_key', /has type REAL/],
      ['orphan', /not declared/],
      ['narrow', /v is TEXT but dup\.id is INTEGER/],
      ['tenanted', /scope tenant differs/],
    ];
    for (const [name, pattern] of expected) {
      assert.ok(naming(problems, name).some((p) => pattern.test(p)), `missing ${pattern} for ${name} in ${JSON.stringify(problems, null, 1)}`);
    }
    assert.equal(problems.length, expected.length, JSON.stringify(problems, null, 1));
  });

  test('schema problems and declaration problems of different tables are reported together', () => {
    const problems = problemsOf([
      table('bad_direction', { direction: 'sideways' }),
      table('bad_policy', { conflict: 'coin_flip' }),
      table('keyless', { key: ['nope'] }),
      table('dup'),
      table('dup'),
      // References a table whose own declaration is broken: that table's problem is the one to fix.
      table('child', { references: [{ columns: ['id'], table: 'bad_direction' }] }),
    ]);
    assert.equal(naming(problems, 'bad_direction').length, 1, JSON.stringify(problems, null, 1));
    assert.equal(naming(problems, 'bad_policy').length, 1);
    assert.equal(naming(problems, 'keyless').length, 1);
    assert.equal(naming(problems, 'dup').length, 1);
    assert.equal(naming(problems, 'child').length, 0, 'no spurious "not declared" for a table that is declared, if badly');
    assert.equal(problems.length, 4);
  });
});

describe('parseSharedConfig accepts', () => {
  test('defaults: scope user, server_wins, nullable columns, no references; direction none is dropped', () => {
    const config = parseSharedConfig({ tables: [table('a'), table('hidden', { direction: 'none' })] });
    assert.deepEqual(
      config.tables.map((t) => t.name),
      ['a'],
    );
    const [a] = config.tables;
    assert.equal(a!.scope, 'user');
    assert.equal(a!.conflict, 'server_wins');
    assert.equal(a!.tiebreak, 'server_wins');
    assert.deepEqual(a!.references, []);
    assert.ok(a!.columns.every((c) => c.nullable));
    assert.equal(config.retention.bundles, 10_000);
  });

  test('composite, TEXT, BLOB and UUID keys; a composite reference of matching types', () => {
    const config = parseSharedConfig({
      tables: [
        table('pairs', { key: ['x', 'y'], columns: [{ name: 'x', type: 'INTEGER' }, { name: 'y', type: 'TEXT' }] }),
        table('uuids', { key: ['u'], columns: [{ name: 'u', type: 'UUID' }] }),
        table('blobs', { key: ['b'], columns: [{ name: 'b', type: 'BLOB' }] }),
        table('refs', {
          columns: [{ name: 'id', type: 'INTEGER' }, { name: 'px', type: 'INTEGER' }, { name: 'py', type: 'TEXT' }, { name: 'u', type: 'UUID' }],
          references: [
            { columns: ['px', 'py'], table: 'pairs' },
            { columns: ['u'], table: 'uuids' },
          ],
        }),
      ],
    });
    assert.equal(config.tables.length, 4);
  });

  test('an up-only child may reference a parent that syncs both ways; a down-only child a down-only parent', () => {
    assert.doesNotThrow(() =>
      parseSharedConfig({
        tables: [
          table('p'),
          table('c', { direction: 'up', references: [{ columns: ['id'], table: 'p' }] }),
          table('dp', { direction: 'down' }),
          table('dc', { direction: 'down', references: [{ columns: ['id'], table: 'dp' }] }),
        ],
      }),
    );
  });

  test('all tables of scope tenant is fine', () => {
    const config = parseSharedConfig({ tables: [table('a', { scope: 'tenant' }), table('b', { scope: 'tenant' })] });
    assert.ok(config.tables.every((t) => t.scope === 'tenant'));
  });
});

describe('parentFirst', () => {
  const decl = (name: string, refs: string[] = []): SharedTable =>
    sharedTableSchema.parse(table(name, { columns: [{ name: 'id', type: 'INTEGER' }, ...refs.map((r) => ({ name: `${r}_id`, type: 'INTEGER' }))], references: refs.map((r) => ({ columns: [`${r}_id`], table: r })) }));
  const names = (tables: SharedTable[]) => tables.map((t) => t.name);

  test('parents come before children whatever the declaration order', () => {
    assert.deepEqual(names(parentFirst([decl('grandchild', ['child']), decl('child', ['parent']), decl('parent')])), ['parent', 'child', 'grandchild']);
    assert.deepEqual(names(parentFirst([decl('c', ['a', 'b']), decl('b', ['a']), decl('a')])), ['a', 'b', 'c']);
  });

  test('a self-reference keeps the table once, in place', () => {
    assert.deepEqual(names(parentFirst([decl('other'), decl('tree', ['tree'])])), ['other', 'tree']);
    assert.deepEqual(names(parentFirst([decl('tree', ['tree']), decl('leaf', ['tree'])])), ['tree', 'leaf']);
  });

  test('a cycle keeps every table exactly once, and tables outside it still follow their parents', () => {
    const order = names(parentFirst([decl('a', ['b']), decl('b', ['a']), decl('leaf', ['a']), decl('root')]));
    assert.deepEqual([...order].sort(), ['a', 'b', 'leaf', 'root']);
    assert.ok(order.indexOf('leaf') > order.indexOf('a'));
    assert.ok(order.indexOf('leaf') > order.indexOf('b'));
    // Declaration order within the cycle: b is visited as a's parent first.
    assert.deepEqual(order, ['b', 'a', 'leaf', 'root']);
  });

  test('parseSharedConfig returns its tables parent-first', () => {
    const config = parseSharedConfig({
      tables: [
        table('child', { columns: [{ name: 'id', type: 'INTEGER' }, { name: 'pid', type: 'INTEGER' }], references: [{ columns: ['pid'], table: 'parent' }] }),
        table('parent'),
      ],
    });
    assert.deepEqual(
      config.tables.map((t) => t.name),
      ['parent', 'child'],
    );
  });
});
