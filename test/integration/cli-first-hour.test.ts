import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { uuidv7 } from 'uuidv7';
import { Routes } from '../../src/protocol/constants.js';
import { wireBatch, type TableSpec } from '../support/cloud-batches.js';
import { createDeviceToken, runSyncline, runSynclineOnTerminal, startServer, type ServerProcess } from '../support/processes.js';
import { hs256Token } from '../support/jwt.js';
import { JWT_SECRET, userToken } from '../support/shared-fixtures.js';
import { tempDir } from '../support/temp.js';

/**
 * What a new user meets in the first hour, through real CLI processes against one
 * real server process: long jobs on a terminal show a progress line rewritten in
 * place (a replay after an approval, a two-way file's hydration) and in a pipe only
 * their result; a JWT the agent or the server refuses is one line with the fix.
 * The terminal is util-linux `script`.
 */

const REWRITTEN = '\r\u001b[K';
const AUDIENCE = 'syncline-first-hour';
const SHARED = {
  auth: { hs256_secret: JWT_SECRET, audience: AUDIENCE },
  tables: [{ name: 'todos', direction: 'both', key: ['id'], columns: [{ name: 'id', type: 'TEXT' }, { name: 'title', type: 'TEXT' }] }],
};
/** A JWT the server accepts: user `sub`, device `sid`, the configured audience. */
const deviceJwt = (user: string, sid: string) => userToken(user, { sid, aud: AUDIENCE });
const spec = (table: string): TableSpec => ({ table, columns: [{ name: 'id', type: 'INTEGER', pk: 1 }, { name: 'name', type: 'TEXT' }] });

describe('the first hour: progress on a terminal, one-line JWT errors', () => {
  const dir = tempDir('syncline-first-hour-');
  let server: ServerProcess;
  const admin = (args: string[]) => ['admin', ...args, '--server', server.url];
  const adminEnv = () => ({ SYNCLINE_ADMIN_TOKEN: server.adminToken });
  /** Stages `rows` rows of `table` under review (the server's default policy); returns the review and lineage. */
  const stage = async (deviceToken: string, table: string, rows: number) => {
    const batch = wireBatch(spec(table), Array.from({ length: rows }, (_, i) => ({ seq: i + 1, op: 'insert' as const, pk: [BigInt(i + 1)], row: [BigInt(i + 1), `n${i + 1}`] })), { epoch: uuidv7() });
    const sent = await fetch(`${server.url}${Routes.rowBatch}`, { method: 'POST', headers: { authorization: `Bearer ${deviceToken}`, 'content-type': 'application/json' }, body: JSON.stringify(batch) });
    const { lineage_id } = (await sent.json()) as { lineage_id: string };
    const page = (await (await fetch(`${server.url}${Routes.schemaReviews}?lineage_id=${lineage_id}&status=queued`, { headers: { authorization: `Bearer ${server.adminToken}` } })).json()) as { reviews: { id: string }[] };
    return { lineageId: lineage_id, reviewId: page.reviews[0]!.id };
  };

  before(async () => {
    writeFileSync(join(dir.path, 'shared.json'), JSON.stringify(SHARED));
    // Small replay chunks: the replay of a few thousand rows then takes several polls of the CLI.
    server = await startServer({ dataDir: join(dir.path, 'server'), extraArgs: ['--shared-config', join(dir.path, 'shared.json'), '--replay-chunk-rows', '100'] });
  });
  after(async () => {
    await server?.stop();
    dir.remove();
  });

  test('approve follows the replay it started on a terminal, and answers at once in a pipe', async () => {
    const device = await createDeviceToken(server, 'replays');
    const onTerminal = await stage(device.token, 'readings', 3000);
    const tty = await runSynclineOnTerminal(admin(['reviews', 'approve', onTerminal.reviewId, '--all-mirror']), adminEnv());
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, new RegExp(`${REWRITTEN.replace(/[[\]\\]/g, '\\$&')}replaying ${onTerminal.lineageId}: \\d+ of 3000 staged rows, \\d+ rows/s \\(Ctrl-C stops watching; the replay goes on\\)`));
    assert.match(tty.stdout, /replayed 3000 staged rows into the mirror/, 'it says how the replay ended');

    const inPipe = await stage(device.token, 'events', 300);
    const piped = await runSyncline(admin(['reviews', 'approve', inPipe.reviewId, '--all-mirror']), adminEnv());
    assert.equal(piped.code, 0, piped.stderr);
    assert.match(piped.stdout, new RegExp(`replaying 300 staged rows \\(syncline admin reviews replay ${inPipe.lineageId}\\)`));
    assert.doesNotMatch(piped.stdout + piped.stderr, /\r|\u001b/);
  });

  test("a two-way file's first sync draws its hydration on a terminal only", async () => {
    const seed = join(dir.path, 'seed.db');
    const app = new Database(seed);
    app.exec('CREATE TABLE todos (id TEXT PRIMARY KEY, title TEXT)');
    const insert = app.prepare('INSERT INTO todos VALUES (?, ?)');
    app.transaction(() => {
      for (let i = 0; i < 2000; i++) insert.run(`t${i}`, `todo ${i}`);
    })();
    app.close();
    const pushed = await runSyncline(['agent', '--shared', '--db', seed, '--server', server.url, '--jwt', await deviceJwt('hana', 'seed'), '--once']);
    assert.equal(pushed.code, 0, pushed.stderr);

    const tty = await runSynclineOnTerminal(['agent', '--shared', '--db', join(dir.path, 'fresh.db'), '--server', server.url, '--jwt', await deviceJwt('hana', 'fresh'), '--once']);
    assert.equal(tty.code, 0, tty.stdout);
    assert.match(tty.stdout, /\r\u001b\[Khydrating .*fresh\.db: \d+ rows in \d+ chunks?(, \d+ rows\/s)?/);
    const report = JSON.parse(tty.stdout.slice(tty.stdout.lastIndexOf('{"hydrated"')).trim()) as { hydrated: { rows: number } };
    assert.equal(report.hydrated.rows, 2000);

    const piped = await runSyncline(['agent', '--shared', '--db', join(dir.path, 'piped.db'), '--server', server.url, '--jwt', await deviceJwt('hana', 'piped'), '--once']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.doesNotMatch(piped.stdout + piped.stderr, /\r|\u001b|hydrating .*piped\.db/);
    assert.equal((JSON.parse(piped.stdout.trim()) as { hydrated: { rows: number } }).hydrated.rows, 2000);
  });

  test('a JWT that is malformed, wrongly signed, expired or for another audience is refused in one line with the fix', async () => {
    const db = join(dir.path, 'refused.db');
    const agent = (jwt: string, extra: string[] = []) => runSyncline(['agent', '--shared', '--db', db, '--server', server.url, '--jwt', jwt, '--once', ...extra]);
    const refusals: [string, string, number, RegExp][] = [
      ['not a JWT', 'not-a-jwt', 2, /--jwt is not a JWT \(header\.payload\.signature, base64url\): it has 1 part\(s\), not three; pass the token your sign-in issued/],
      ['not base64url JSON', 'abc.def.ghi', 2, /--jwt is not a JWT .*; pass the token your sign-in issued/],
      ['another secret', await hs256Token('another-secret-0123456789abcdef0123', { sub: 'ines', sid: 'x', aud: AUDIENCE }), 1, /the server refused --jwt: the bearer token signature does not verify; sign the JWT with the server's SYNCLINE_JWT_SECRET \(HS256\) or a key of its SYNCLINE_JWKS_URL/],
      ['expired', await hs256Token(JWT_SECRET, { sub: 'ines', sid: 'x', aud: AUDIENCE }, { expiresInSec: -600 }), 1, /the server refused --jwt: the bearer token has expired; get a fresh JWT from your sign-in/],
      ['another audience', await userToken('ines', { sid: 'x', aud: 'someone-else' }), 1, /the server refused --jwt: the bearer token has the wrong audience; issue the JWT with the claims the server expects: sub \(the user\), sid \(this device\), and the issuer and audience/],
      ['no sub', await hs256Token(JWT_SECRET, { sid: 'x', aud: AUDIENCE }), 1, /the server refused --jwt: the token's "sub" claim is missing .*; issue the JWT with the claims the server expects/],
    ];
    for (const [what, jwt, code, expected] of refusals) {
      const run = await agent(jwt);
      assert.equal(run.code, code, `${what}: ${run.stderr}`);
      const lines = run.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `${what}: one line\n${run.stderr}`);
      assert.match(lines[0]!, /^syncline: agent: .+\.$/, what);
      assert.match(lines[0]!, expected, what);
      assert.doesNotMatch(lines[0]!, /admin device create/, `${what}: no hint about device tokens`);
    }
    const disagreeing = await agent(await deviceJwt('ines', 'phone'), ['--source', 'laptop']);
    assert.equal(disagreeing.code, 2, disagreeing.stderr);
    assert.match(disagreeing.stderr, /^syncline: agent: --source laptop disagrees with the token's sid claim "phone", and the server takes the device from the claim; drop --source/);
    const accepted = await agent(await deviceJwt('ines', 'phone'), ['--source', 'phone']);
    assert.equal(accepted.code, 0, `the same device named twice is fine: ${accepted.stderr}`);
  });
});
