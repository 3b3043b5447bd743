import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NPM_QUIET = ['--no-audit', '--no-fund', '--loglevel=error'];

export interface InstalledPackage {
  /** The consumer project: package.json, node_modules/syncline from the tarball. */
  app: string;
  tarball: string;
  /** Paths inside the tarball (without the leading `package/`). */
  files: string[];
  dependencies: Record<string, string>;
}

/**
 * `npm pack`s the repo (which runs `prepare`, i.e. the build) and installs the
 * tarball into a fresh project with `npm install --offline`. The runtime dependencies
 * are linked from the repo's node_modules first, so npm finds them installed and
 * neither downloads nor compiles anything (better-sqlite3 builds from source in
 * about two minutes); only the declared runtime dependencies are linked, so a
 * missing declaration or a stray import of a dev dependency (tsx) fails here.
 */
export function packAndInstall(dir: string): InstalledPackage {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', dir, ...NPM_QUIET], { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as {
    filename: string;
    files: { path: string }[];
  }[];
  const entry = packed[0]!;
  const tarball = join(dir, entry.filename);
  const manifest = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const app = join(dir, 'app');
  mkdirSync(join(app, 'node_modules'), { recursive: true });
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2));
  for (const name of Object.keys(manifest.dependencies)) {
    const link = join(app, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(join(REPO, 'node_modules', name), link, 'dir');
  }
  execFileSync('npm', ['install', tarball, '--offline', '--ignore-scripts', ...NPM_QUIET], { cwd: app, stdio: ['ignore', 'pipe', 'pipe'] });
  return { app, tarball, files: entry.files.map((f) => f.path), dependencies: manifest.dependencies };
}

/** Copies the repo's examples/FILE into the consumer project, where `syncline` resolves to the installed package. */
export function copyExample(app: string, file: string): string {
  const target = join(app, file);
  copyFileSync(join(REPO, 'examples', file), target);
  return target;
}

/** Links a dev-only package (the type checker, @types/node) for the consumer's tsc run, after npm has installed. */
export function linkDevPackage(app: string, name: string): void {
  const link = join(app, 'node_modules', name);
  mkdirSync(dirname(link), { recursive: true });
  symlinkSync(join(REPO, 'node_modules', name), link, 'dir');
}
