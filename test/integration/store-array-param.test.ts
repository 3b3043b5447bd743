import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { arrayParam } from '../../src/cloud/store/array-param.js';
import { openTestStore, postgresReachable, STORE_KINDS, type TestStore } from '../support/stores.js';

/** arrayParam's literal reads back in PostgreSQL and PGlite as the array it was made from, whatever the strings hold. */
for (const kind of STORE_KINDS) {
  describe(`arrayParam [${kind}]`, { skip: kind === 'postgres' && !postgresReachable ? 'PostgreSQL is not reachable' : false }, () => {
    let handle: TestStore;
    before(async () => {
      handle = await openTestStore(kind, { migrate: false });
    });
    after(async () => {
      await handle.close();
    });

    test('text arrays round-trip: quotes, backslashes, braces, commas, spaces, NULL as a word, control characters, any unicode', async () => {
      // PostgreSQL text holds no NUL.
      const text = fc.string({ unit: 'binary' }).map((s) => s.replaceAll('\u0000', ''));
      const special = fc.constantFrom('', 'NULL', 'null', ' a ', '{', '}', ',', '"', '\\', '\\n', 'a"b\\c', '\n\t\r', '\u2028', '{"x": "y\\"z"}');
      await fc.assert(
        fc.asyncProperty(fc.array(fc.option(fc.oneof(text, special), { nil: null }), { maxLength: 12 }), async (values) => {
          const { rows } = await handle.store.query<{ a: (string | null)[] }>('SELECT $1::text[] AS a', [arrayParam(values)]);
          assert.deepEqual(rows[0]!.a, values);
        }),
        { numRuns: 200 },
      );
    });

    test('uuid and bigint arrays, as the set-based ingest statements send them', async () => {
      const ids = ['0190a1b2-0000-7000-8000-000000000001', null, '0190A1B2-0000-7000-8000-00000000000F'];
      const { rows } = await handle.store.query<{ u: string[]; n: string[]; c: number }>('SELECT $1::uuid[]::text[] AS u, $2::bigint[]::text[] AS n, cardinality($3::uuid[]) AS c', [
        arrayParam(ids),
        arrayParam([1, '9007199254740993', null, -5]),
        arrayParam([]),
      ]);
      assert.deepEqual(rows[0], { u: ['0190a1b2-0000-7000-8000-000000000001', null, '0190a1b2-0000-7000-8000-00000000000f'], n: ['1', '9007199254740993', null, '-5'], c: 0 });
    });
  });
}
