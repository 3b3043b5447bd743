import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * The real PostgreSQL the tests use when it is reachable: SYNCLINE_TEST_PG_URL
 * (set by .ci/run), else the machine's default on 127.0.0.1:5432. Every caller
 * gets a database of its own, dropped by `drop()`, so test files can run at once.
 */
const ADMIN_URL = process.env.SYNCLINE_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

let reachable: Promise<boolean> | undefined;

export function realPostgresReachable(): Promise<boolean> {
  reachable ??= (async () => {
    const client = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2000 });
    try {
      await client.connect();
      await client.query('select 1');
      return true;
    } catch {
      if (process.env.CI === 'true') throw new Error(`PostgreSQL at ${ADMIN_URL} is not reachable; .ci/run should have started it`);
      return false;
    } finally {
      await client.end().catch(() => {});
    }
  })();
  return reachable;
}

/** Runs `sql` on the admin database (what a scratch database cannot do to itself, such as refusing connections). */
export async function adminExec(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: ADMIN_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/**
 * Scratch databases are named after the process that made them, so a sweep can tell the ones
 * left behind by a killed or cancelled run (their process is gone) from ones still in use by
 * another test run on the same machine.
 */
const SCRATCH_PREFIX = 'syncline_test_';
const SCRATCH_NAME = /^syncline_test_p(\d+)_[0-9a-f]+$/;

export async function createScratchDatabase(): Promise<ScratchDatabase> {
  const name = `${SCRATCH_PREFIX}p${process.pid}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const client = new pg.Client({ connectionString: ADMIN_URL });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Drops the scratch databases whose creating process no longer runs (a test file killed on
 * timeout or by Ctrl-C never reaches its `after` hook). Returns the names dropped; does nothing
 * when PostgreSQL is not reachable. Names of the older format (no pid) are left alone: nothing
 * tells whether a run still uses them.
 */
export async function sweepStaleScratchDatabases(): Promise<string[]> {
  const admin = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 2000 });
  try {
    await admin.connect();
  } catch {
    return [];
  }
  try {
    const { rows } = await admin.query<{ datname: string }>('SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [SCRATCH_PREFIX]);
    const stale = rows.map((r) => r.datname).filter((name) => {
      const pid = SCRATCH_NAME.exec(name)?.[1];
      return pid !== undefined && Number(pid) !== process.pid && !processAlive(Number(pid));
    });
    for (const name of stale) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    return stale;
  } finally {
    await admin.end().catch(() => {});
  }
}
