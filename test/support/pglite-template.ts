import { createHash } from 'node:crypto';
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { migrate } from '../../src/cloud/store/migrations.js';
import { PgliteStore } from '../../src/cloud/store/pglite-store.js';

/**
 * A migrated PGlite database kept as a tarball in the temp directory, so each test store
 * starts as a copy of it instead of running initdb (about 3 s of CPU each, two dozen times a
 * run). The file name carries a hash of PGlite's version and of every migration's source, so a
 * changed migration makes a new template; tests still run `migrate` on the copy.
 */
const STORE_DIR = fileURLToPath(new URL('../../src/cloud/store/', import.meta.url));
const PGLITE_PACKAGE = fileURLToPath(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url));

function templatePath(): string {
  const hash = createHash('sha256');
  hash.update(JSON.parse(readFileSync(PGLITE_PACKAGE, 'utf8')).version as string);
  hash.update(readFileSync(join(STORE_DIR, 'migrations.ts')));
  for (const name of readdirSync(join(STORE_DIR, 'migrations')).sort()) hash.update(name).update(readFileSync(join(STORE_DIR, 'migrations', name)));
  return join(tmpdir(), `syncline-pglite-template-${hash.digest('hex').slice(0, 16)}.tar`);
}

let template: Promise<Blob> | undefined;

export function migratedTemplate(): Promise<Blob> {
  template ??= (async () => {
    const path = templatePath();
    try {
      return new Blob([readFileSync(path)]);
    } catch {
      const store = await PgliteStore.open();
      try {
        await migrate(store, {});
        const dump = await store.dump();
        // Written aside then renamed: parallel test files never read half a template.
        const partial = `${path}.${process.pid}`;
        writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
        renameSync(partial, path);
        return dump;
      } finally {
        await store.close();
      }
    }
  })();
  return template;
}

let templateDir: Promise<string> | undefined;

/**
 * Fills `dataDir` (missing or empty) with a copy of the migrated template as a PGlite
 * data directory, for a `syncline server` process started on it: the server then opens a
 * database instead of running initdb, which took 30-45 s of a loaded 2-core machine per start.
 * The server still runs its migrations on it.
 */
export async function seedDataDir(dataDir: string): Promise<void> {
  templateDir ??= (async () => {
    const path = `${templatePath()}.d`;
    if (!existsSync(path)) {
      const partial = `${path}.${process.pid}`;
      rmSync(partial, { recursive: true, force: true });
      const db = new PGlite(partial, { loadDataDir: await migratedTemplate() });
      await db.close();
      try {
        renameSync(partial, path);
      } catch (error) {
        // Another test file made it first (the rename of a directory onto a full one fails).
        rmSync(partial, { recursive: true, force: true });
        if (!existsSync(path)) throw error;
      }
    }
    return path;
  })();
  cpSync(await templateDir, dataDir, { recursive: true, errorOnExist: true, force: false });
}
