import { SynclineError } from '../../protocol/errors.js';
import type { BufferedEvent } from './change-stream-buffer.js';
import { changeOpOf, EventBuilder, originOf } from './change-stream-event.js';
import { selectsTable, type StreamSettings } from './change-stream-options.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';
import { JournalReader } from '../journal/journal-reader.js';

/** Raw entries per query: large enough to amortise the statement, small enough to stop early when the buffer fills. */
const CHUNK = 1000;
/** Entries looked at per read() at most, so one poll never holds the event loop for long. */
const SCAN_BUDGET = 20_000;

export interface SourceRead {
  events: BufferedEvent[];
  /** The journal holds more after the read position (the buffer or the budget stopped the read). */
  more: boolean;
}

/**
 * Reads a stream's journal entries in seq (= commit) order from a read position.
 *
 * Seqs are dense: seq is the rowid, SQLite hands out max(rowid)+1, a rolled-back
 * insert hands nothing out, and nothing but pruning deletes entries. So a missing
 * seq after the read position means entries this stream needed were pruned, and
 * the stream stops with checkpoint_expired instead of skipping them silently.
 * Entries of unselected tables are scanned (cheaply, undecoded) for that reason.
 */
export class JournalSource {
  readonly #reader: JournalReader;
  readonly #builder = new EventBuilder();
  readonly #settings: Pick<StreamSettings, 'tables' | 'ops' | 'checkpoint'>;
  readonly #selected = new Map<string, boolean>();
  #position: number;

  private constructor(reader: JournalReader, position: number, settings: Pick<StreamSettings, 'tables' | 'ops' | 'checkpoint'>) {
    this.#reader = reader;
    this.#settings = settings;
    this.#position = position;
  }

  /** A source reading after `position`; throws checkpoint_expired when the journal no longer holds what follows it. */
  static async open(db: SqliteDriver, position: number, settings: Pick<StreamSettings, 'tables' | 'ops' | 'checkpoint'>): Promise<JournalSource> {
    const source = new JournalSource(new JournalReader(db), position, settings);
    const newest = await source.#reader.maxSeq();
    if (newest < position) {
      throw source.#expired(
        `the journal ends at seq ${newest}, before the resume point ${position}: it was recreated, the file was restored from a backup, or the seq belongs to another file`,
      );
    }
    const first = (await source.#reader.readRaw(position, 1))[0];
    if (first && first.seq !== position + 1) throw source.#expired(`journal entries ${position + 1}..${first.seq - 1} were pruned`);
    return source;
  }

  /** Whether the journal holds entries after the read position. */
  async pending(): Promise<boolean> {
    return (await this.#reader.readRaw(this.#position, 1)).length > 0;
  }

  /** The highest seq read (delivered, filtered out, or waiting in the buffer). */
  get position(): number {
    return this.#position;
  }

  async read(room: number, at: number): Promise<SourceRead> {
    const events: BufferedEvent[] = [];
    let scanned = 0;
    while (scanned < SCAN_BUDGET) {
      const raws = await this.#reader.readRaw(this.#position, CHUNK);
      for (const raw of raws) {
        if (events.length >= room) return { events, more: true };
        if (raw.seq !== this.#position + 1) {
          throw this.#expired(`journal entries ${this.#position + 1}..${raw.seq - 1} were pruned before this stream read them`);
        }
        this.#position = raw.seq;
        scanned += 1;
        if (!this.#selects(raw.table) || !this.#settings.ops.has(changeOpOf(raw.op, raw.seq))) continue;
        events.push({ event: this.#builder.fromEntry(this.#reader.decode(raw), originOf(raw), at), ackSeq: raw.seq });
      }
      if (raws.length < CHUNK) return { events, more: false };
    }
    return { events, more: true };
  }

  #selects(table: string): boolean {
    let selected = this.#selected.get(table);
    if (selected === undefined) {
      selected = selectsTable(this.#settings, table);
      this.#selected.set(table, selected);
    }
    return selected;
  }

  #expired(why: string): SynclineError {
    const name = this.#settings.checkpoint;
    const advice = name
      ? `checkpoint "${name}" is behind the journal's retention; restart it with a snapshot`
      : 'without a named checkpoint pruning does not wait for this stream; restart with a snapshot (and a checkpoint)';
    return new SynclineError('checkpoint_expired', `${why}; ${advice}`, { checkpoint: name, seq: this.#position });
  }
}
