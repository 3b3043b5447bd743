import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';

/**
 * A small file next to the database, `<db>.syncline-epoch`, holding the journal
 * epoch and the highest acked seq per table as of the last ack.
 *
 * Why: restoring the database from a backup brings back an older journal and
 * older cursors. The agent would then hand out seqs the cloud has already acked
 * in this epoch, and the cloud, which dedupes on (epoch, seq), would drop those
 * new changes as duplicates. The sidecar is outside the file, so it survives the
 * restore and shows that the file went back in time; the agent then starts a new
 * epoch (with a fresh snapshot) instead.
 */

export interface SidecarState {
  epoch: string;
  cursors: Record<string, number>;
  updated_at: string;
}

export function sidecarPath(dbPath: string): string {
  return `${dbPath}.syncline-epoch`;
}

/** The sidecar, or undefined when it is missing or unreadable (then nothing can be concluded). */
export function readSidecar(path: string): SidecarState | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<SidecarState>;
    if (typeof parsed.epoch !== 'string' || typeof parsed.cursors !== 'object' || parsed.cursors === null) return undefined;
    return { epoch: parsed.epoch, cursors: parsed.cursors, updated_at: String(parsed.updated_at ?? '') };
  } catch {
    return undefined;
  }
}

/** Written to a temporary file, flushed and renamed, so a crash leaves the old or the new sidecar, never half of one. */
export function writeSidecar(path: string, epoch: string, cursors: ReadonlyMap<string, number>): void {
  const state: SidecarState = { epoch, cursors: Object.fromEntries(cursors), updated_at: new Date().toISOString() };
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, JSON.stringify(state));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/**
 * Why the file looks restored from a backup, or undefined when it does not.
 * Epochs are UUIDv7, which sort by creation time, so a file carrying an older
 * epoch than the sidecar's is older than the last ack.
 */
export function restoredFromBackup(file: { epoch: string; cursors: ReadonlyMap<string, number> }, sidecar: SidecarState | undefined): string | undefined {
  if (!sidecar) return undefined;
  if (sidecar.epoch !== file.epoch) {
    return file.epoch < sidecar.epoch ? `the file's journal epoch ${file.epoch} is older than the last acked epoch ${sidecar.epoch}` : undefined;
  }
  for (const [table, acked] of Object.entries(sidecar.cursors)) {
    const inFile = file.cursors.get(table) ?? 0;
    if (inFile < acked) return `table ${table} is acked up to seq ${acked} but the file's cursor says ${inFile}`;
  }
  return undefined;
}
