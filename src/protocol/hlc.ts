/**
 * Hybrid logical clock stamps for last-writer-wins. A stamp is wall-clock
 * milliseconds plus a counter that orders writes within the same millisecond (or
 * after the local clock fell behind one already seen), plus the writer's source
 * id as the final tiebreak, so no two writers ever produce equal stamps.
 *
 * Text form: 15-digit ms, '-', 6-digit counter, '-', source. Fixed widths make
 * plain string order equal to clock order for the first two parts.
 */
export interface HlcParts {
  ms: number;
  counter: number;
  source: string;
}

const HLC_TEXT = /^(\d{15})-(\d{6})-(.+)$/;
const MAX_COUNTER = 999_999;
/** How far ahead of the local clock an observed stamp may be. */
export const MAX_DRIFT_MS = 24 * 60 * 60 * 1000;
/** The text form, for validating stamps that arrive over the wire. */
export const HLC_PATTERN = /^\d{15}-\d{6}-[A-Za-z0-9._:-]{1,200}$/;

export function formatHlc(parts: HlcParts): string {
  return `${String(parts.ms).padStart(15, '0')}-${String(parts.counter).padStart(6, '0')}-${parts.source}`;
}

export function parseHlc(text: string): HlcParts | undefined {
  const match = HLC_TEXT.exec(text);
  if (!match) return undefined;
  return { ms: Number(match[1]), counter: Number(match[2]), source: match[3]! };
}

/** Orders two stamps; an unreadable stamp sorts before every readable one. */
export function compareHlc(a: string, b: string): number {
  const pa = parseHlc(a);
  const pb = parseHlc(b);
  if (!pa || !pb) return pa ? 1 : pb ? -1 : a < b ? -1 : a > b ? 1 : 0;
  if (pa.ms !== pb.ms) return pa.ms - pb.ms;
  if (pa.counter !== pb.counter) return pa.counter - pb.counter;
  return pa.source < pb.source ? -1 : pa.source > pb.source ? 1 : 0;
}

/** The clock of one writer. Its state is plain data so the device can persist it. */
export class HybridClock {
  #ms: number;
  #counter: number;
  readonly source: string;

  constructor(source: string, state: { ms: number; counter: number } = { ms: 0, counter: 0 }) {
    this.source = source;
    this.#ms = state.ms;
    this.#counter = state.counter;
  }

  get state(): { ms: number; counter: number } {
    return { ms: this.#ms, counter: this.#counter };
  }

  /** A stamp for a write made at `wallMs`, later than every stamp made or seen before. */
  stamp(wallMs: number): string {
    if (wallMs > this.#ms) {
      this.#ms = wallMs;
      this.#counter = 0;
    } else if (this.#counter < MAX_COUNTER) {
      this.#counter += 1;
    } else {
      this.#ms += 1;
      this.#counter = 0;
    }
    return formatHlc({ ms: this.#ms, counter: this.#counter, source: this.source });
  }

  /**
   * Takes in a stamp seen from another writer, so later local stamps order after it.
   * A stamp further ahead of this machine's clock than MAX_DRIFT_MS is ignored: one
   * writer with a wild clock must not drag every later stamp of every device along.
   */
  observe(stamp: string, nowMs = Date.now()): void {
    const parts = parseHlc(stamp);
    if (!parts || parts.ms > nowMs + MAX_DRIFT_MS) return;
    if (parts.ms > this.#ms || (parts.ms === this.#ms && parts.counter > this.#counter)) {
      this.#ms = parts.ms;
      this.#counter = parts.counter;
    }
  }
}
