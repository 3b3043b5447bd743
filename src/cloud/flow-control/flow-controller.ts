import type { Logger } from 'pino';
import { transactionWithRetry, type Store } from '../store/store.js';
import { claimDueControls, dueControlDevices, type OutgoingControl } from './controls.js';
import { decideFlow, type FlowLimits } from './flow-decision.js';
import { flowCandidates, settleFlow } from './flow-state.js';
import { sleep } from '../../protocol/backoff.js';
import { WakeableSleep } from '../../protocol/wakeable-sleep.js';

/** Where controls go out to devices (the MQTT downlink); HTTP devices fetch theirs instead. */
export interface ControlSink {
  sendControl(control: OutgoingControl): Promise<void>;
  /**
   * Whether the sink reaches the device now; absent: any device. An embedded
   * broker reaches only the devices connected to it: with several server
   * processes each runs its own, and a control published into the wrong one is
   * lost until its resend; a device that is away gets its controls when it connects.
   */
  readonly reaches?: ((deviceId: string) => boolean) | undefined;
}

export interface FlowControllerOptions {
  store: Store;
  logger: Logger;
  limits: FlowLimits;
  /** How often to look at the counters when nobody wakes the controller (other processes ingest too). */
  intervalMs?: number;
  /** First resend of an unacked control after this long; doubling up to `maxResendMs`. */
  resendMs?: number;
  maxResendMs?: number;
}

export const FLOW_INTERVAL_MS = 1000;
export const CONTROL_RESEND_MS = 10_000;
export const CONTROL_MAX_RESEND_MS = 5 * 60_000;
const PAGE = 500;
/** Passes asked for by wake() come at most this often: one per ingested batch would only repeat the same query. */
const MIN_GAP_MS = 50;

/**
 * Pauses and resumes devices per lineage from the staged backlog and the circuit
 * breaker, and delivers the resulting controls until they are acked. Each pass:
 * find lineages whose counters call for an action, settle each in its own
 * transaction (re-deciding under the lock), then send what is due. Several server
 * processes may run it at once; locks keep them from acting twice.
 */
export class FlowController {
  readonly #options: FlowControllerOptions;
  readonly #log: Logger;
  #sink: ControlSink | undefined;
  /** Its wait between passes; a wake during a pass is kept, so the next pass follows (after MIN_GAP_MS). */
  readonly #idle = new WakeableSleep();

  constructor(options: FlowControllerOptions) {
    this.#options = options;
    this.#log = options.logger;
  }

  get limits(): FlowLimits {
    return this.#options.limits;
  }

  /** Set when a downlink exists (MQTT); without one, controls wait for devices to fetch them over HTTP. */
  setSink(sink: ControlSink | undefined): void {
    this.#sink = sink;
  }

  /** Asks for a pass soon (after an ingest staged rows, or an operator action issued a control). */
  wake(): void {
    this.#idle.wake();
  }

  /** One pass; returns how many controls it issued and sent. */
  async tick(): Promise<{ issued: number; sent: number }> {
    const issued = await this.#evaluate();
    const sent = await this.#dispatch();
    return { issued, sent };
  }

  async run(signal: AbortSignal): Promise<void> {
    const interval = this.#options.intervalMs ?? FLOW_INTERVAL_MS;
    while (!signal.aborted) {
      try {
        await this.tick();
      } catch (error) {
        this.#log.error({ err: error }, 'flow control pass failed; retrying');
      }
      if (await this.#idle.sleep(interval, signal)) await sleep(MIN_GAP_MS, signal);
    }
  }

  async #evaluate(): Promise<number> {
    const { store, limits } = this.#options;
    let issued = 0;
    let after: string | undefined;
    for (;;) {
      const page = await flowCandidates(store, limits, PAGE, after);
      for (const candidate of page) {
        // Decide on the unlocked snapshot first: most candidates need nothing, and locking them all would slow ingest.
        if (decideFlow(candidate.flow, limits).kind === 'none') continue;
        const { action, control } = await transactionWithRetry(store, (tx) => settleFlow(tx, candidate.lineage_id, limits));
        if (action.kind === 'none') continue;
        const counters = { staged_rows: candidate.flow.staged_rows, staged_bytes: candidate.flow.staged_bytes, consecutive_failures: candidate.flow.consecutive_failures };
        this.#log.info({ lineage_id: candidate.lineage_id, action: action.kind, ...('reason' in action ? { reason: action.reason } : {}), control_id: control?.control_id, ...counters }, 'flow control changed a lineage');
        if (control) issued += 1;
      }
      if (page.length < PAGE) return issued;
      after = page.at(-1)!.lineage_id;
    }
  }

  async #dispatch(): Promise<number> {
    const sink = this.#sink;
    if (!sink) return 0;
    const options = { limit: PAGE, resendMs: this.#options.resendMs ?? CONTROL_RESEND_MS, maxResendMs: this.#options.maxResendMs ?? CONTROL_MAX_RESEND_MS };
    // Only the devices with a control due are checked against the sink: a pass follows every ingest, and the sink may hold thousands.
    const reaches = sink.reaches;
    const deviceIds = reaches && (await dueControlDevices(this.#options.store, PAGE)).filter(reaches);
    if (deviceIds?.length === 0) return 0;
    let sent = 0;
    for (const control of await claimDueControls(this.#options.store, { ...options, ...(deviceIds ? { deviceIds } : {}) })) {
      try {
        await sink.sendControl(control);
        sent += 1;
      } catch (error) {
        // Still pending: the next resend picks it up.
        this.#log.warn({ err: error, device_id: control.deviceId, control_id: control.message.control_id }, 'could not send a control; it will be sent again');
      }
    }
    return sent;
  }
}
