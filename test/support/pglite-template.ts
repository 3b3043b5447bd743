import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
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
