import { printable } from './output.js';

/**
 * The progress of a long command (an agent's drain, a replay, a hydration) for a
 * person at a terminal: one line on stderr, rewritten in place. In a pipe there is
 * none (`progressLine` returns undefined): scripts read the command's final output
 * and the JSON logs, which a rewritten line would only garble.
 */
export interface ProgressLine {
  show(text: string): void;
  /** Clears the line, so what the command prints next starts on a clean one. */
  end(): void;
}

export function progressLine(stream: NodeJS.WriteStream = process.stderr): ProgressLine | undefined {
  if (!stream.isTTY) return undefined;
  let shown = false;
  return {
    show(text) {
      stream.write(`\r\u001b[K${printable(text)}`);
      shown = true;
    },
    end() {
      if (shown) stream.write('\r\u001b[K');
      shown = false;
    },
  };
}

/** Items per second since `startedAt` (Date.now()), rounded, for a progress line. */
export function perSecond(count: number, startedAt: number): number {
  return Math.round(count / Math.max(0.001, (Date.now() - startedAt) / 1000));
}
