import { existsSync, watch } from 'node:fs';
import { systemClock, type Clock } from '../../protocol/wakeable-sleep.js';
import type { DeviceDb } from './better-sqlite3-driver.js';

/**
 * A commit writes its frames to the `-wal` file a moment before it publishes
 * them in the shared index, so a reader woken by the write may not see it yet
 * (more likely on a loaded machine, where the writer can lose its core between
 * the two). The hint is therefore repeated this long after the last write.
 */
const REPEAT_AFTER_MS = [5, 25, 100] as const;

/**
 * Calls `listener` whenever a connection (any process) may have committed to
 * the WAL-mode file `db` is open on: every commit writes the `-wal` file, so the
 * kernel's file watch (inotify) says when to look and an idle reader needs no
 * short poll. Each write's hint comes at once and again REPEAT_AFTER_MS later.
 * Returns the function that stops it, or undefined when the file cannot be
 * watched (the caller then polls).
 */
export function watchWal(db: DeviceDb, listener: () => void, clock: Clock = systemClock): (() => void) | undefined {
  const wal = `${db.name}-wal`;
  // The WAL file appears with the connection's first read.
  if (!existsSync(wal)) db.prepare('SELECT count(*) FROM sqlite_master').get();
  let cancel: (() => void) | undefined;
  const repeat = (step: number) => {
    const ms = REPEAT_AFTER_MS[step];
    cancel = ms === undefined ? undefined : clock.setTimer(() => {
      listener();
      repeat(step + 1);
    }, ms - (REPEAT_AFTER_MS[step - 1] ?? 0));
  };
  try {
    const watcher = watch(wal, { persistent: false }, () => {
      cancel?.();
      listener();
      repeat(0);
    });
    const stop = () => {
      cancel?.();
      watcher.close();
    };
    watcher.on('error', stop);
    return stop;
  } catch {
    return undefined;
  }
}
