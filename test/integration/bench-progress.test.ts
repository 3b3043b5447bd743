import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { finished, runOnTerminal, spawnScript, tsxCommand } from '../support/processes.js';
import { tempDir } from '../support/temp.js';
import { freePort } from '../support/mqtt-fixtures.js';

/**
 * `npm run bench` (bench/run.ts as its own process): progress lines on a terminal,
 * only the figures and the results file in a pipe, a results file that keeps the
 * groups that did not run, and a group it does not have refused before it
 * overwrites anything. The group run here is shared-backend
 * against a PostgreSQL address nothing listens on, so it skips at once.
 */
const RUN = fileURLToPath(new URL('../../bench/run.ts', import.meta.url));

test('the bench shows its progress on a terminal only, and refuses a group it does not have', async () => {
  const dir = tempDir('syncline-bench-progress-');
  try {
    // CI=true would make an unreachable PostgreSQL an error instead of a skip.
    const nowhere = { SYNCLINE_TEST_PG_URL: `postgres://postgres@127.0.0.1:${await freePort()}/none`, CI: '', SYNCLINE_BENCH_OUT: join(dir.path, 'tty.json') };
    const tty = await runOnTerminal(tsxCommand(RUN, ['shared-backend']), nowhere);
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, /^\[bench 0:\d\d\] == shared-backend\r?$/m);
    assert.match(tty.stdout, /^\[bench 0:\d\d\] shared backend: PostgreSQL is not reachable; skipped\r?$/m);
    assert.ok(existsSync(nowhere.SYNCLINE_BENCH_OUT));

    // The file already holds a capture result from an earlier run: running another group keeps it.
    const pipedEnv = { ...nowhere, SYNCLINE_BENCH_OUT: join(dir.path, 'piped.json') };
    const capture = { generated_at: '2026-01-02T03:04:05.000Z', duration_s: 12, machine: { node: 'v20.0.0', cpus: 2 }, figures: [{ name: 'capture overhead', value: 1.5, unit: 'x slower' }] };
    writeFileSync(pipedEnv.SYNCLINE_BENCH_OUT, JSON.stringify({ groups: { capture } }));
    const piped = await finished(spawnScript(RUN, ['shared-backend'], pipedEnv));
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '');
    assert.equal(piped.stdout.trim(), `wrote ${pipedEnv.SYNCLINE_BENCH_OUT}`, 'no progress in a pipe: the figures (none here) and the file');
    const merged = JSON.parse(readFileSync(pipedEnv.SYNCLINE_BENCH_OUT, 'utf8')) as { figures: unknown[]; groups: Record<string, { generated_at: string; machine: { cpus: number }; figures: unknown[] }> };
    assert.deepEqual(Object.keys(merged.groups), ['capture', 'shared-backend'], 'in group order');
    assert.deepEqual(merged.groups.capture, capture, 'the group that did not run is kept as it was');
    assert.deepEqual(merged.groups['shared-backend']!.figures, []);
    assert.ok(Date.parse(merged.groups['shared-backend']!.generated_at) > Date.parse(capture.generated_at));
    assert.equal(merged.groups['shared-backend']!.machine.cpus, cpus().length);
    assert.deepEqual(merged.figures, capture.figures, 'every group\'s figures in one list');

    const typo = await finished(spawnScript(RUN, ['captur'], { ...pipedEnv, SYNCLINE_BENCH_OUT: join(dir.path, 'typo.json') }));
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /^bench: no group captur; the groups are capture, drain, [a-z, -]*\.\n$/);
    assert.ok(!existsSync(join(dir.path, 'typo.json')), 'nothing written');
  } finally {
    dir.remove();
  }
});
