import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MIRROR_TABLE_PREFIX, defaultMirrorColumn, deviceTag, mirrorNameCandidates, mirrorTableName, quotedForHumans, quoteIdent, validateSourceName } from '../../src/cloud/identifiers.js';
import { tooWideReason, widestRowBytes } from '../../src/cloud/governance/row-width.js';
import { SynclineError } from '../../src/protocol/errors.js';

const DEVICE = '0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9';
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

const hostile = (fn: () => void) => assert.throws(fn, (e: unknown) => e instanceof SynclineError && e.code === 'hostile_identifier');

describe('validateSourceName', () => {
  test('accepts ordinary, quoted, punctuated and unicode names up to 63 bytes', () => {
    for (const name of ['orders', 'x"; DROP TABLE devices; --', 'a"b', 'Ünïcödé 表', "it's", 'a'.repeat(63), '🙂'.repeat(15)]) {
      validateSourceName(name, 'table');
      validateSourceName(name, 'column');
    }
  });

  test('refuses empty names, NUL, lone surrogates and names over 63 bytes', () => {
    for (const name of ['', 'a\u0000b', 'x\ud800', 'a'.repeat(64), 'é'.repeat(32), '🙂'.repeat(16)]) {
      hostile(() => validateSourceName(name, 'table'));
      hostile(() => validateSourceName(name, 'column'));
    }
  });

  test('refuses the reserved prefix for columns, in any case', () => {
    hostile(() => validateSourceName('_syncline_seq', 'column'));
    hostile(() => validateSourceName('_SYNCLINE_overflow', 'column'));
    validateSourceName('_syncline_things', 'table');
    validateSourceName('syncline_x', 'column');
  });

  test('names the offending identifier in the error context', () => {
    try {
      validateSourceName('_syncline_x', 'column', { batch_id: 'b' });
      assert.fail('expected a refusal');
    } catch (error) {
      assert.ok(error instanceof SynclineError);
      assert.equal(error.context.column, '_syncline_x');
      assert.equal(error.context.batch_id, 'b');
    }
  });
});

describe('quoteIdent', () => {
  test('doubles embedded quotes and wraps the name', () => {
    assert.equal(quoteIdent('a"b'), '"a""b"');
    assert.equal(quoteIdent('x"; DROP TABLE devices; --'), '"x""; DROP TABLE devices; --"');
    assert.equal(quoteIdent('plain'), '"plain"');
  });

  test('a quoted name always parses back to the same name', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }).filter((s) => !s.includes('\u0000')), (name) => {
        const quoted = quoteIdent(name);
        assert.ok(quoted.startsWith('"') && quoted.endsWith('"'));
        const inner = quoted.slice(1, -1);
        // every quote inside comes in pairs, so the identifier cannot end early
        assert.equal(inner.replaceAll('""', ''), name.replaceAll('"', ''));
        assert.equal(inner.replaceAll('""', '"'), name);
      }),
    );
  });

  test('refuses empty and NUL names', () => {
    hostile(() => quoteIdent(''));
    hostile(() => quoteIdent('a\u0000'));
  });
});

describe('mirrorTableName', () => {
  test('keeps a plain lowercase name as it is', () => {
    assert.equal(deviceTag(DEVICE), '0b1c2d3e');
    assert.equal(mirrorTableName(DEVICE, 'orders'), 'edge_mirror_0b1c2d3e_orders');
  });

  test('sanitizes and hashes anything else', () => {
    const name = mirrorTableName(DEVICE, 'x"; DROP TABLE devices; --');
    assert.match(name, /^edge_mirror_0b1c2d3e_x___drop_table_devices_____[0-9a-f]{8}$/);
    assert.match(mirrorTableName(DEVICE, 'Orders'), /^edge_mirror_0b1c2d3e_orders_[0-9a-f]{8}$/);
  });

  test('names that sanitize alike stay distinct', () => {
    const sources = ['Foo', 'foo', 'FOO', 'f-o', 'f_o', 'f o', 'f"o', 'fö', 'f😀', 'a'.repeat(42), 'a'.repeat(43), 'a'.repeat(60), `${'a'.repeat(59)}b`];
    const names = sources.map((s) => mirrorTableName(DEVICE, s));
    assert.equal(new Set(names).size, sources.length);
  });

  test('is a safe lowercase identifier of at most 63 bytes, never one of Syncline\'s own tables', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 63, unit: 'binary' }), fc.uuid(), (source, device) => {
        const name = mirrorTableName(device, source);
        assert.match(name, /^edge_mirror_[0-9a-f]{8}_[a-z0-9_]+$/);
        assert.ok(bytes(name) <= 63);
        assert.ok(name.startsWith(MIRROR_TABLE_PREFIX));
      }),
    );
  });

  test('distinct sources never collide (property)', () => {
    // Only a source spelled exactly like another's hashed form could collide; the
    // provisioner's fallback names (below) cover that case.
    fc.assert(
      fc.property(fc.uniqueArray(fc.string({ minLength: 1, maxLength: 70 }), { minLength: 2, maxLength: 20 }), (sources) => {
        const names = sources.map((s) => mirrorTableName(DEVICE, s));
        assert.equal(new Set(names).size, sources.length);
      }),
    );
  });

  test('fallback candidates differ from the plain name and end with a lineage-unique one', () => {
    const lineage = '01890a5d-ac96-774b-bcce-b302099a8057';
    const [plain, qualified, unique] = mirrorNameCandidates(DEVICE, 'orders', lineage);
    assert.equal(plain, 'edge_mirror_0b1c2d3e_orders');
    assert.match(qualified!, /^edge_mirror_0b1c2d3e_orders_[0-9a-f]{16}$/);
    assert.equal(unique, 'edge_mirror_l01890a5dac96774bbcceb302099a8057');
    const other = mirrorNameCandidates('0b1c2d3e-0000-4000-8000-000000000000', 'orders', lineage);
    assert.equal(other[0], plain, 'two devices may share a tag ...');
    assert.notEqual(other[1], qualified, '... but not the qualified name');
    for (const name of [plain, qualified, unique]) assert.ok(bytes(name!) <= 63);
  });
});

describe('names that act on a terminal', () => {
  test('control characters are refused as hostile_identifier and shown escaped', () => {
    for (const name of ['a\u0001\u001b[31mred\n', 'tab\t', 'del\u007f', 'c1\u0085', 'rtl\u202e', 'iso\u2066']) {
      assert.throws(
        () => validateSourceName(name, 'column'),
        (e: unknown) => e instanceof SynclineError && e.code === 'hostile_identifier' && /control character/.test(e.message) && !/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/.test(e.message),
        JSON.stringify(name),
      );
    }
    assert.equal(quotedForHumans('a\u001b[31m\u202e'), '"a\\u001b[31m\\u202e"');
    validateSourceName('ünï "cødé" 😀', 'column');
  });
});

describe('defaultMirrorColumn', () => {
  test('PostgreSQL system column names get an underscore, more when that name is taken', () => {
    for (const name of ['xmin', 'xmax', 'cmin', 'cmax', 'ctid', 'tableoid', 'oid']) assert.equal(defaultMirrorColumn(name, new Set([name])), `${name}_`);
    assert.equal(defaultMirrorColumn('xmin', new Set(['xmin', 'xmin_', 'xmin__'])), 'xmin___');
    assert.equal(defaultMirrorColumn('XMIN', new Set(['XMIN'])), 'XMIN', 'quoted XMIN is not the system column');
    assert.equal(defaultMirrorColumn('id', new Set(['id'])), 'id');
  });
});

describe('row width', () => {
  test('the widest row counts fixed columns at their width and variable ones at what TOAST leaves', () => {
    assert.equal(widestRowBytes(['bigint']), 24 + 8);
    assert.equal(widestRowBytes(['text', 'bigint']), 24 + 24 + 8);
    assert.equal(tooWideReason(Array(300).fill('text')), null);
    assert.match(tooWideReason(Array(400).fill('text'))!, /can take \d+ bytes, more than the 8160/);
    assert.equal(tooWideReason(Array(990).fill('bigint')), null);
    assert.notEqual(tooWideReason(Array(1100).fill('bigint')), null);
  });
});
