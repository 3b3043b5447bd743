import { selectsTable, type StreamSettings } from './change-stream-options.js';
import { AckTracker } from './change-stream-progress.js';
import { SnapshotReader } from './change-stream-snapshot.js';
import { JournalSource } from './change-stream-source.js';
import { deleteBootstrapGuard, readCheckpoint, writeBootstrapGuard, writeCheckpoint } from './checkpoint-store.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { maxJournalSeq } from '../journal/journal-state.js';

export interface StreamStart {
  source: JournalSource;
  acks: AckTracker;
  /** Present while bootstrap rows remain to be read. */
  snapshot?: SnapshotReader;
  snapshotSeq?: number;
}

/**
 * Where a stream starts, in this order: a snapshot when asked for (`'initial'`: when
 * the checkpoint is new), else after `from`, else after the stored checkpoint,
 * else at the journal's end (only changes from now on). Throws checkpoint_expired
 * when the journal no longer holds what the start position needs.
 */
export async function startStream(db: SqliteDriver, settings: StreamSettings): Promise<StreamStart> {
  const name = settings.checkpoint;
  const stored = name ? await readCheckpoint(db, name) : undefined;
  if (settings.snapshot === true || (settings.snapshot === 'initial' && !stored)) {
    // The guard is taken before the snapshot's transaction, so it is at or below the snapshot's seq.
    if (name) await writeBootstrapGuard(db, name, await maxJournalSeq(db));
    try {
      const snapshot = await SnapshotReader.open(db, (table) => selectsTable(settings, table));
      try {
        const source = await JournalSource.open(db, snapshot.seq, settings);
        // An empty snapshot is complete at once; otherwise nothing is acknowledged before its last event.
        const acks = new AckTracker(snapshot.done ? snapshot.seq : undefined, stored?.seq);
        return { source, acks, snapshotSeq: snapshot.seq, ...(snapshot.done ? {} : { snapshot }) };
      } catch (error) {
        await snapshot.close();
        throw error;
      }
    } catch (error) {
      if (name) await deleteBootstrapGuard(db, name);
      throw error;
    }
  }
  const position = settings.from ?? stored?.seq ?? (await maxJournalSeq(db));
  const source = await JournalSource.open(db, position, settings);
  // Written at once, so pruning keeps what this consumer needs from its first moment.
  if (name && stored?.seq !== position) await writeCheckpoint(db, name, position);
  return { source, acks: new AckTracker(position, position) };
}
