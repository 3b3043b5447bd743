import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { columnActions, parseMirrorAs } from '../../src/cli/approve-actions.js';
import { SynclineError } from '../../src/protocol/errors.js';

const refused = (message: RegExp) => (e: unknown) => e instanceof SynclineError && e.code === 'invalid_config' && message.test(e.message);

describe('syncline admin reviews approve: flags to column actions', () => {
  test('--mirror-as takes a target, a type, or both, parsed strictly: after a colon comes a mirror type', () => {
    assert.deepEqual(parseMirrorAs('name=label'), { name: 'name', action: 'mirror_as', target: 'label' });
    assert.deepEqual(parseMirrorAs('price=:jsonb'), { name: 'price', action: 'mirror_as', pg_type: 'jsonb' });
    assert.deepEqual(parseMirrorAs('price=cost:double precision'), { name: 'price', action: 'mirror_as', target: 'cost', pg_type: 'double precision' });
    assert.deepEqual(parseMirrorAs('qty=:NUMERIC'), { name: 'qty', action: 'mirror_as', pg_type: 'numeric' }, 'types are case-insensitive');
    assert.throws(() => parseMirrorAs('t=a:b'), refused(/"b" is not a mirror type; use one of bigint, double precision, text, numeric, bytea, jsonb/));
    assert.throws(() => parseMirrorAs('at=at:integer'), refused(/"integer" is not a mirror type/));
    assert.throws(() => parseMirrorAs('t=a:b:text'), refused(/cannot contain ":"/));
    assert.throws(() => parseMirrorAs('name'), refused(/--mirror-as takes/));
    assert.throws(() => parseMirrorAs('name='), refused(/--mirror-as takes/));
  });

  test('--all-mirror names every incoming column the other flags leave out', () => {
    const actions = columnActions({ allMirror: true, ignore: 'secret', mirrorAs: 'name=label', defer: 'later' }, ['id', 'name', 'secret', 'later', 'qty']);
    assert.deepEqual(actions, [
      { name: 'name', action: 'mirror_as', target: 'label' },
      { name: 'secret', action: 'ignore' },
      { name: 'later', action: 'defer' },
      { name: 'id', action: 'mirror' },
      { name: 'qty', action: 'mirror' },
    ]);
  });

  test('without --all-mirror only the named columns are sent (the server names the missing ones)', () => {
    assert.deepEqual(columnActions({ mirror: 'id, name' }, ['id', 'name', 'qty']), [{ name: 'id', action: 'mirror' }, { name: 'name', action: 'mirror' }]);
  });

  test('a column named twice is refused; --columns-json wins for names with commas', () => {
    assert.throws(() => columnActions({ mirror: 'a', ignore: 'a' }, []), refused(/column a is named twice/));
    const json = JSON.stringify([{ name: 'a,b=c', action: 'mirror_as', target: 'abc' }]);
    assert.deepEqual(columnActions({ columnsJson: json, allMirror: true }, ['a,b=c', 'id']), [{ name: 'a,b=c', action: 'mirror_as', target: 'abc' }, { name: 'id', action: 'mirror' }]);
    assert.throws(() => columnActions({ columnsJson: '{' }, []), refused(/not JSON/));
  });
});
