import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeEachStore } from '../support/stores.js';

/**
 * Queryable.copyIn with a payload rendered in parts (the mirror's COPY writer):
 * every part arrives in order, and a renderer that fails part-way aborts the COPY
 * with its own error, leaving the transaction usable from its savepoint.
 */
describeEachStore('COPY in parts', (ctx) => {
  test('the parts land in order, special characters escaped as COPY text', async () => {
    await ctx.store.exec('DROP TABLE IF EXISTS copy_parts; CREATE TABLE copy_parts (id bigint PRIMARY KEY, note text)');
    function* parts(): Generator<string> {
      for (let part = 0; part < 3; part++) {
        const lines: string[] = [];
        for (let i = part * 1000 + 1; i <= part * 1000 + 1000; i++) lines.push(`${i}\tnote ${i}\\ttab`);
        yield `${lines.join('\n')}\n`;
      }
    }
    await ctx.store.transaction((tx) => tx.copyIn('copy_parts (id, note)', parts));
    const { rows } = await ctx.store.query<{ n: string; first: string; last: string }>("SELECT count(*)::text AS n, min(note) FILTER (WHERE id = 1) AS first, min(note) FILTER (WHERE id = 3000) AS last FROM copy_parts");
    assert.deepEqual(rows[0], { n: '3000', first: 'note 1\ttab', last: 'note 3000\ttab' });
  });

  test('a renderer that fails part-way fails the COPY with its own error; the savepoint before it still holds', async () => {
    await ctx.store.exec('DROP TABLE IF EXISTS copy_parts; CREATE TABLE copy_parts (id bigint PRIMARY KEY, note text)');
    const broken = new Error('the renderer broke after one part');
    function* parts(): Generator<string> {
      yield '1\tone\n';
      throw broken;
    }
    await ctx.store.transaction(async (tx) => {
      await tx.query("INSERT INTO copy_parts VALUES (0, 'before')");
      await tx.query('SAVEPOINT before_copy');
      await assert.rejects(tx.copyIn('copy_parts (id, note)', parts), (error: unknown) => error === broken);
      await tx.query('ROLLBACK TO SAVEPOINT before_copy');
    });
    const { rows } = await ctx.store.query<{ id: string; note: string }>('SELECT id::text, note FROM copy_parts ORDER BY id');
    assert.deepEqual(rows, [{ id: '0', note: 'before' }]);
  });
});
