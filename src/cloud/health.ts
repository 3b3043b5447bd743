import type { Logger } from 'pino';
import type { Store } from './store/store.js';

/** The parts of the server that can be unreachable while the process keeps running. */
export type HealthComponent = 'database' | 'mqtt_broker';

export interface HealthProblem {
  component: HealthComponent;
  reason: string;
  /** When the problem was first seen (ISO 8601). */
  since: string;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  problems?: HealthProblem[];
}

/**
 * What `/healthz` reports: the components that are down right now, each with the
 * reason and since when. Components report themselves (the MQTT link on connect
 * and offline); the database is probed at each check. Transitions are logged once,
 * not at every check.
 */
export class HealthBoard {
  readonly #problems = new Map<HealthComponent, { reason: string; since: Date }>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  degrade(component: HealthComponent, reason: string): void {
    const known = this.#problems.get(component);
    if (!known) this.#logger.warn({ component, reason }, 'degraded');
    this.#problems.set(component, { reason, since: known?.since ?? new Date() });
  }

  recover(component: HealthComponent): void {
    const known = this.#problems.get(component);
    if (!known) return;
    this.#problems.delete(component);
    this.#logger.info({ component, down_ms: Date.now() - known.since.getTime() }, 'recovered');
  }

  has(component: HealthComponent): boolean {
    return this.#problems.has(component);
  }

  report(): HealthReport {
    if (this.#problems.size === 0) return { status: 'ok' };
    const problems = [...this.#problems].map(([component, p]) => ({ component, reason: p.reason, since: p.since.toISOString() }));
    return { status: 'degraded', problems };
  }

  /** Probes the database once (no retries) and records the outcome. */
  async checkDatabase(store: Store): Promise<void> {
    try {
      await store.ping();
      this.recover('database');
    } catch (error) {
      this.degrade('database', `database unreachable: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
}
