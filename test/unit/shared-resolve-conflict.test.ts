import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { resolveConflict, sameRow, type ChangeSide, type ConflictCase, type ConflictResolver, type Resolution } from '../../src/device/twoway/resolve-conflict.js';
import { formatHlc } from '../../src/protocol/hlc.js';
import type { ConflictPolicy, SharedTable, Tiebreak } from '../../src/protocol/shared-sync.js';
import { sameValue, type SqlValue } from '../../src/protocol/values.js';
import { sqlValue } from '../support/arbitraries.js';

const COLUMNS: SharedTable['columns'] = [
  { name: 'id', type: 'INTEGER', nullable: false },
  { name: 'a', type: 'TEXT', nullable: true },
  { name: 'b', type: 'TEXT', nullable: true },
  { name: 'c', type: 'TEXT', nullable: true },
];

function tableOf(conflict: ConflictPolicy, tiebreak: Tiebreak = 'server_wins', width = COLUMNS.length): ConflictCase['table'] {
  const columns = width === COLUMNS.length ? COLUMNS : Array.from({ length: width }, (_, i) => ({ name: `c${i}`, type: 'TEXT' as const, nullable: true }));
  return { name: 't', columns, conflict, tiebreak };
}

const EARLY = formatHlc({ ms: 1_000, counter: 0, source: 'phone' });
const LATE = formatHlc({ ms: 2_000, counter: 0, source: 'laptop' });

const upsert = (row: SqlValue[], hlc: string): ChangeSide => ({ op: 'upsert', row, hlc });
const del = (hlc: string): ChangeSide => ({ op: 'delete', row: null, hlc });

function conflict(
  policy: ConflictPolicy,
  parts: { base?: SqlValue[] | null; local: ChangeSide; remote: ChangeSide; tiebreak?: Tiebreak },
): ConflictCase {
  return {
    table: tableOf(policy, parts.tiebreak),
    key: [1n],
    base: parts.base === undefined ? [1n, 'a0', 'b0', 'c0'] : parts.base,
    local: parts.local,
    remote: { ...parts.remote, version: '7' },
  };
}

/** The row a resolution leaves standing. */
function resultOf(c: ConflictCase, resolution: Resolution): SqlValue[] | null {
  return resolution.winner === 'remote' ? c.remote.row : resolution.winner === 'local' ? c.local.row : resolution.row;
}

describe('resolveConflict: whole-row policies', () => {
  const local = upsert([1n, 'mine', 'b0', 'c0'], EARLY);
  const remote = upsert([1n, 'theirs', 'b0', 'c0'], LATE);

  test('server_wins: the remote side, whichever is newer', () => {
    assert.deepEqual(resolveConflict(conflict('server_wins', { local, remote })), { resolution: { winner: 'remote' }, policy: 'server_wins' });
    assert.deepEqual(resolveConflict(conflict('server_wins', { local: { ...local, hlc: LATE }, remote: { ...remote, hlc: EARLY } })).resolution, { winner: 'remote' });
  });

  test('client_wins: the local side, whichever is newer', () => {
    assert.deepEqual(resolveConflict(conflict('client_wins', { local, remote })), { resolution: { winner: 'local' }, policy: 'client_wins' });
    assert.deepEqual(resolveConflict(conflict('client_wins', { local: del(EARLY), remote })).resolution, { winner: 'local' });
  });

  test('last_writer_wins: the later HLC, deletes included', () => {
    assert.deepEqual(resolveConflict(conflict('last_writer_wins', { local, remote })), { resolution: { winner: 'remote' }, policy: 'last_writer_wins' });
    assert.deepEqual(resolveConflict(conflict('last_writer_wins', { local: { ...local, hlc: LATE }, remote: { ...remote, hlc: EARLY } })).resolution, { winner: 'local' });
    assert.deepEqual(resolveConflict(conflict('last_writer_wins', { local: del(LATE), remote: { ...remote, hlc: EARLY } })).resolution, { winner: 'local' });
    assert.deepEqual(resolveConflict(conflict('last_writer_wins', { local, remote: del(LATE) })).resolution, { winner: 'remote' });
  });

  test('last_writer_wins: same millisecond is decided by the counter, then by the source', () => {
    const at = (counter: number, source: string) => formatHlc({ ms: 5_000, counter, source });
    const decide = (l: string, r: string) => resolveConflict(conflict('last_writer_wins', { local: { ...local, hlc: l }, remote: { ...remote, hlc: r } })).resolution.winner;
    assert.equal(decide(at(2, 'a'), at(1, 'z')), 'local');
    assert.equal(decide(at(1, 'z'), at(2, 'a')), 'remote');
    assert.equal(decide(at(1, 'b'), at(1, 'a')), 'local');
    assert.equal(decide(at(1, 'a'), at(1, 'b')), 'remote');
  });

  test('last_writer_wins: an unreadable remote stamp (a server row without one) loses to any real stamp', () => {
    assert.equal(resolveConflict(conflict('last_writer_wins', { local, remote: { ...remote, hlc: '' } })).resolution.winner, 'local');
  });
});

describe('resolveConflict: merge_columns', () => {
  const base: SqlValue[] = [1n, 'a0', 'b0', 'c0'];
  const merge = (localRow: SqlValue[] | null, remoteRow: SqlValue[] | null, options: { base?: SqlValue[] | null; tiebreak?: Tiebreak; localHlc?: string; remoteHlc?: string } = {}) => {
    const c = conflict('merge_columns', {
      base: options.base === undefined ? base : options.base,
      tiebreak: options.tiebreak ?? 'server_wins',
      local: localRow ? upsert(localRow, options.localHlc ?? EARLY) : del(options.localHlc ?? EARLY),
      remote: remoteRow ? upsert(remoteRow, options.remoteHlc ?? LATE) : del(options.remoteHlc ?? LATE),
    });
    const decision = resolveConflict(c);
    assert.equal(decision.policy, 'merge_columns');
    return { resolution: decision.resolution, row: resultOf(c, decision.resolution) };
  };

  test('only local changed a column: the local value', () => {
    const { resolution, row } = merge([1n, 'mine', 'b0', 'c0'], base);
    assert.deepEqual(resolution, { winner: 'local' });
    assert.deepEqual(row, [1n, 'mine', 'b0', 'c0']);
  });

  test('only remote changed a column: the remote value', () => {
    const { resolution, row } = merge(base, [1n, 'a0', 'theirs', 'c0']);
    assert.deepEqual(resolution, { winner: 'remote' });
    assert.deepEqual(row, [1n, 'a0', 'theirs', 'c0']);
  });

  test('each side changed a different column: both changes kept', () => {
    const { resolution, row } = merge([1n, 'mine', 'b0', 'c0'], [1n, 'a0', 'theirs', 'c0']);
    assert.deepEqual(resolution, { winner: 'merged', row: [1n, 'mine', 'theirs', 'c0'] });
    assert.deepEqual(row, [1n, 'mine', 'theirs', 'c0']);
  });

  test('both changed a column to the same value: that value, no tiebreak needed', () => {
    for (const tiebreak of ['server_wins', 'client_wins'] as const) {
      const { row } = merge([1n, 'same', 'mine', 'c0'], [1n, 'same', 'b0', 'theirs'], { tiebreak });
      assert.deepEqual(row, [1n, 'same', 'mine', 'theirs']);
    }
  });

  test('both changed a column to different values: the tiebreak decides that column only', () => {
    const local: SqlValue[] = [1n, 'mine', 'only-mine', 'c0'];
    const remote: SqlValue[] = [1n, 'theirs', 'b0', 'only-theirs'];
    assert.deepEqual(merge(local, remote, { tiebreak: 'server_wins' }).row, [1n, 'theirs', 'only-mine', 'only-theirs']);
    assert.deepEqual(merge(local, remote, { tiebreak: 'client_wins' }).row, [1n, 'mine', 'only-mine', 'only-theirs']);
    assert.deepEqual(merge(local, remote, { tiebreak: 'last_writer_wins', localHlc: LATE, remoteHlc: EARLY }).row, [1n, 'mine', 'only-mine', 'only-theirs']);
    assert.deepEqual(merge(local, remote, { tiebreak: 'last_writer_wins', localHlc: EARLY, remoteHlc: LATE }).row, [1n, 'theirs', 'only-mine', 'only-theirs']);
  });

  test('a delete on either side: the tiebreak decides the whole row', () => {
    const edited: SqlValue[] = [1n, 'mine', 'b0', 'c0'];
    assert.deepEqual(merge(null, edited, { tiebreak: 'server_wins' }), { resolution: { winner: 'remote' }, row: edited });
    assert.deepEqual(merge(null, edited, { tiebreak: 'client_wins' }), { resolution: { winner: 'local' }, row: null });
    assert.deepEqual(merge(edited, null, { tiebreak: 'server_wins' }), { resolution: { winner: 'remote' }, row: null });
    assert.deepEqual(merge(edited, null, { tiebreak: 'client_wins' }), { resolution: { winner: 'local' }, row: edited });
    assert.deepEqual(merge(edited, null, { tiebreak: 'last_writer_wins', localHlc: LATE, remoteHlc: EARLY }).row, edited);
    assert.deepEqual(merge(edited, null, { tiebreak: 'last_writer_wins', localHlc: EARLY, remoteHlc: LATE }).row, null);
    assert.equal(merge(null, null, { tiebreak: 'client_wins' }).row, null);
  });

  test('no base (both sides created the row): every differing column goes to the tiebreak', () => {
    const local: SqlValue[] = [1n, 'mine', 'same', null];
    const remote: SqlValue[] = [1n, 'theirs', 'same', 'x'];
    assert.deepEqual(merge(local, remote, { base: null, tiebreak: 'server_wins' }), { resolution: { winner: 'remote' }, row: remote });
    assert.deepEqual(merge(local, remote, { base: null, tiebreak: 'client_wins' }), { resolution: { winner: 'local' }, row: local });
  });

  test('storage classes matter: 1 (INTEGER) and 1.0 (REAL) are different values', () => {
    const c = conflict('merge_columns', {
      base: [1n, 1n, null, null],
      local: upsert([1n, 1, null, null], EARLY),
      remote: upsert([1n, 1n, null, 'x'], LATE),
    });
    assert.deepEqual(resolveConflict(c).resolution, { winner: 'merged', row: [1n, 1, null, 'x'] });
  });
});

describe('resolveConflict: both sides did the same', () => {
  test('both deleted the row: the remote side stands (nothing to push), under every policy and tiebreak, whichever is newer', () => {
    for (const policy of ['server_wins', 'client_wins', 'last_writer_wins', 'merge_columns'] as const) {
      for (const tiebreak of ['server_wins', 'client_wins', 'last_writer_wins'] as const) {
        for (const [l, r] of [[LATE, EARLY], [EARLY, LATE]]) {
          assert.deepEqual(resolveConflict(conflict(policy, { local: del(l!), remote: del(r!), tiebreak })), { resolution: { winner: 'remote' }, policy }, `${policy}/${tiebreak}`);
        }
      }
    }
  });

  test('both wrote the same row: the remote side stands, as merge_columns already said', () => {
    const row: SqlValue[] = [1n, 'same', 'b0', 'c0'];
    for (const policy of ['client_wins', 'last_writer_wins', 'merge_columns'] as const) {
      assert.deepEqual(resolveConflict(conflict(policy, { local: upsert(row, LATE), remote: upsert([...row], EARLY), tiebreak: 'client_wins' })).resolution, { winner: 'remote' }, policy);
    }
  });
});

describe('resolveConflict: a custom resolver', () => {
  const c = conflict('server_wins', { local: upsert([1n, 'mine', 'b0', 'c0'], EARLY), remote: upsert([1n, 'theirs', 'b0', 'c0'], LATE) });

  test('overrides the policy, and sees the whole case', () => {
    let seen: ConflictCase | undefined;
    const resolver: ConflictResolver = (x) => {
      seen = x;
      return { winner: 'local' };
    };
    assert.deepEqual(resolveConflict(c, resolver), { resolution: { winner: 'local' }, policy: 'custom' });
    assert.equal(seen, c);
    const merged = resolveConflict(c, () => ({ winner: 'merged', row: [1n, 'both', 'b0', 'c0'] }));
    assert.deepEqual(merged, { resolution: { winner: 'merged', row: [1n, 'both', 'b0', 'c0'] }, policy: 'custom' });
  });

  test('returning undefined leaves the case to the table policy', () => {
    const resolver: ConflictResolver = (x) => (x.table.name === 'other' ? { winner: 'local' } : undefined);
    assert.deepEqual(resolveConflict(c, resolver), { resolution: { winner: 'remote' }, policy: 'server_wins' });
  });

  test('a merged row of the wrong width is refused', () => {
    assert.throws(() => resolveConflict(c, () => ({ winner: 'merged', row: [1n, 'short'] })), TypeError);
  });
});

// ---- properties ----

const hlcArb = fc
  .record({ ms: fc.integer({ min: 0, max: 10_000 }), counter: fc.integer({ min: 0, max: 3 }), source: fc.constantFrom('a', 'b', 'c') })
  .map((p) => formatHlc(p));
/** Small value pools so sides often agree with each other and with the base. */
const cellArb: fc.Arbitrary<SqlValue> = fc.oneof(fc.constantFrom<SqlValue>(null, 'x', 'y', 1n, 1, -0, 0), sqlValue);

const mergeCaseArb = fc.integer({ min: 1, max: 6 }).chain((width) => {
  const rowArb = fc.array(cellArb, { minLength: width, maxLength: width });
  const sideArb = fc.oneof({ weight: 5, arbitrary: rowArb.map((row): SqlValue[] | null => row) }, { weight: 1, arbitrary: fc.constant(null) });
  return fc.record({
    width: fc.constant(width),
    base: fc.option(rowArb, { freq: 4 }),
    local: sideArb,
    remote: sideArb,
    localHlc: hlcArb,
    remoteHlc: hlcArb,
    tiebreak: fc.constantFrom<Tiebreak>('server_wins', 'client_wins', 'last_writer_wins'),
  });
});

type MergeInput = typeof mergeCaseArb extends fc.Arbitrary<infer T> ? T : never;

function mergeCase(m: MergeInput): ConflictCase {
  return {
    table: tableOf('merge_columns', m.tiebreak, m.width),
    key: [1n],
    base: m.base,
    local: m.local ? upsert(m.local, m.localHlc) : del(m.localHlc),
    remote: { ...(m.remote ? upsert(m.remote, m.remoteHlc) : del(m.remoteHlc)), version: '3' },
  };
}

describe('resolveConflict properties', () => {
  test('merge_columns only ever yields, per column, the local or the remote value (property)', () => {
    fc.assert(
      fc.property(mergeCaseArb, (m) => {
        const c = mergeCase(m);
        const { resolution } = resolveConflict(c);
        const row = resultOf(c, resolution);
        if (row === null) {
          assert.ok(c.local.row === null || c.remote.row === null, 'only a delete yields no row');
          return;
        }
        assert.equal(row.length, m.width);
        row.forEach((value, i) => {
          const fromLocal = c.local.row !== null && sameValue(value, c.local.row[i]!);
          const fromRemote = c.remote.row !== null && sameValue(value, c.remote.row[i]!);
          assert.ok(fromLocal || fromRemote, `column ${i} holds neither side's value`);
        });
        if (resolution.winner === 'merged') {
          assert.ok(!sameRow(resolution.row, c.local.row ?? []) && !sameRow(resolution.row, c.remote.row ?? []), 'a merge equal to one side is reported as that side');
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('merge_columns keeps a column changed on one side only (property)', () => {
    fc.assert(
      fc.property(mergeCaseArb, (m) => {
        const c = mergeCase(m);
        if (c.base === null || c.local.row === null || c.remote.row === null) return;
        const row = resultOf(c, resolveConflict(c).resolution)!;
        row.forEach((value, i) => {
          const before = c.base![i]!;
          const mine = c.local.row![i]!;
          const theirs = c.remote.row![i]!;
          if (!sameValue(mine, before) && sameValue(theirs, before)) assert.ok(sameValue(value, mine), `column ${i}: the local change was lost`);
          if (!sameValue(theirs, before) && sameValue(mine, before)) assert.ok(sameValue(value, theirs), `column ${i}: the remote change was lost`);
        });
      }),
      { numRuns: 2000 },
    );
  });

  test('merge_columns with a last_writer_wins tiebreak gives the same row whichever side is local (property)', () => {
    fc.assert(
      fc.property(mergeCaseArb, (m) => {
        fc.pre(m.localHlc !== m.remoteHlc);
        const c = mergeCase({ ...m, tiebreak: 'last_writer_wins' });
        const swapped: ConflictCase = { ...c, local: { op: c.remote.op, row: c.remote.row, hlc: c.remote.hlc }, remote: { ...c.local, version: '3' } };
        const a = resultOf(c, resolveConflict(c).resolution);
        const b = resultOf(swapped, resolveConflict(swapped).resolution);
        assert.ok(a === null ? b === null : b !== null && sameRow(a, b), 'the two devices would disagree');
      }),
      { numRuns: 1000 },
    );
  });

  test('last_writer_wins is antisymmetric: swapping sides and their stamps swaps the winner, unless both did the same (property)', () => {
    const side = fc.record({ row: fc.option(fc.array(cellArb, { minLength: 4, maxLength: 4 })), hlc: hlcArb });
    fc.assert(
      fc.property(side, side, (l, r) => {
        fc.pre(l.hlc !== r.hlc);
        const make = (a: typeof l, b: typeof r): ConflictCase => ({
          table: tableOf('last_writer_wins'),
          key: [1n],
          base: null,
          local: a.row ? upsert(a.row, a.hlc) : del(a.hlc),
          remote: { ...(b.row ? upsert(b.row, b.hlc) : del(b.hlc)), version: '1' },
        });
        const [one, other] = [make(l, r), make(r, l)];
        const first = resolveConflict(one).resolution;
        const second = resolveConflict(other).resolution;
        const same = l.row === null || r.row === null ? l.row === r.row : sameRow(l.row, r.row);
        if (same) assert.deepEqual([first.winner, second.winner], ['remote', 'remote']);
        else assert.notEqual(first.winner, second.winner);
        assert.ok(first.winner === 'local' || first.winner === 'remote');
        assert.deepEqual(resultOf(one, first), resultOf(other, second), 'the same row stands either way');
      }),
      { numRuns: 1000 },
    );
  });

  test('resolution is pure: the same case always gets the same answer (property)', () => {
    fc.assert(
      fc.property(mergeCaseArb, fc.constantFrom<ConflictPolicy>('server_wins', 'client_wins', 'last_writer_wins', 'merge_columns'), (m, policy) => {
        const c = { ...mergeCase(m), table: tableOf(policy, m.tiebreak, m.width) };
        assert.deepEqual(resolveConflict(c), resolveConflict(structuredClone(c)));
      }),
    );
  });
});
