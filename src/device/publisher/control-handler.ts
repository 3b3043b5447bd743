import pino, { type Logger } from 'pino';
import type { ControlMessage } from '../../protocol/control.js';
import { controlParser } from '../../protocol/lazy-schemas.js';
import type { Transport } from '../../transport/transport.js';
import { applyControl, readPausedTables, type PausedTable } from './control-state.js';
import type { SqliteDriver } from '../driver/sqlite-driver.js';

export interface ControlHandlerDeps {
  db: SqliteDriver;
  transport: Transport;
  /** The current journal epoch (a resume's watermark counts only in its own epoch). */
  epoch: () => string;
  /** A table was resumed: the publisher picks it up again from its cursor. */
  onResume: (table: string) => void;
  logger?: Logger;
  /** How often an HTTP device asks for controls while a table is paused. */
  pollMs?: number;
  now?: () => number;
}

export const CONTROL_POLL_MS = 5000;

/**
 * Applies the cloud's flow-control messages on the device: `pause_lineage` stops
 * sending that table (its changes stay in the journal), `resume_lineage` sends
 * it again from the cloud's watermark + 1. Each control is applied durably
 * first, then acked with its control_id; a lost ack only means the cloud sends
 * the control again, which changes nothing the second time. Controls are handled
 * one at a time, in control-id order, whatever channel they came on.
 */
export class ControlHandler {
  readonly #deps: ControlHandlerDeps;
  readonly #log: Logger;
  #paused: Map<string, PausedTable>;
  #chain: Promise<void> = Promise.resolve();
  #polling = false;
  #nextPollAt = 0;

  private constructor(deps: ControlHandlerDeps, paused: Map<string, PausedTable>) {
    this.#deps = deps;
    this.#log = deps.logger ?? pino({ level: 'silent' });
    this.#paused = paused;
    if (this.#paused.size > 0) this.#log.info({ tables: [...this.#paused.keys()] }, 'tables paused by the cloud stay paused until it resumes them');
  }

  /** Starts with the pauses stored in the file, so a paused table stays unsent across restarts. */
  static async open(deps: ControlHandlerDeps): Promise<ControlHandler> {
    return new ControlHandler(deps, await readPausedTables(deps.db));
  }

  isPaused(table: string): boolean {
    return this.#paused.has(table);
  }

  get paused(): PausedTable[] {
    return [...this.#paused.values()];
  }

  /** Queues controls for handling; resolves when these are handled (never rejects). */
  handle(controls: readonly unknown[]): Promise<void> {
    this.#chain = this.#chain.then(async () => {
      const parse = await controlParser();
      const valid: ControlMessage[] = [];
      for (const raw of controls) {
        try {
          valid.push(parse(raw));
        } catch (error) {
          this.#log.warn({ err: error }, 'ignoring a malformed control message');
        }
      }
      valid.sort((a, b) => (a.control_id < b.control_id ? -1 : a.control_id > b.control_id ? 1 : 0));
      for (const control of valid) await this.#one(control);
    });
    return this.#chain;
  }

  /**
   * Asks the cloud for controls when the transport can be asked (HTTP) and a
   * table is paused; call it from the agent loop. At most one request at a time.
   */
  poll(signal?: AbortSignal): void {
    const fetchControls = this.#deps.transport.fetchControls?.bind(this.#deps.transport);
    const now = (this.#deps.now ?? Date.now)();
    if (!fetchControls || this.#paused.size === 0 || this.#polling || now < this.#nextPollAt) return;
    this.#polling = true;
    this.#nextPollAt = now + (this.#deps.pollMs ?? CONTROL_POLL_MS);
    fetchControls(signal)
      .then((controls) => this.handle(controls))
      .catch((error: unknown) => this.#log.debug({ err: error }, 'could not fetch controls; asking again later'))
      .finally(() => (this.#polling = false));
  }

  /** Waits for the controls queued so far. */
  async settled(): Promise<void> {
    await this.#chain;
  }

  async #one(control: ControlMessage): Promise<void> {
    const context = { control_id: control.control_id, table: control.source_table, type: control.type, reason: control.reason };
    let applied;
    try {
      applied = await applyControl(this.#deps.db, control, this.#deps.epoch());
    } catch (error) {
      // Not acked: the cloud sends it again, and the next attempt may find the file writable.
      this.#log.warn({ ...context, err: error }, 'could not apply a control yet');
      return;
    }
    if (applied.status === 'applied') {
      const before = this.#paused.has(control.source_table);
      this.#paused = await readPausedTables(this.#deps.db);
      if (control.type === 'resume_lineage') this.#deps.onResume(control.source_table);
      if (before !== this.#paused.has(control.source_table)) {
        this.#log.info({ ...context, server_watermark: control.server_watermark, cursor_advanced_to: applied.cursorAdvancedTo }, control.type === 'pause_lineage' ? 'the cloud paused a table; buffering it locally' : 'the cloud resumed a table');
      }
    }
    try {
      await this.#deps.transport.ackControl?.({ control_id: applied.control_id, status: applied.status });
    } catch (error) {
      this.#log.debug({ ...context, err: error }, 'control ack not delivered; the cloud will send the control again');
    }
  }
}
