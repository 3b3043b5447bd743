import { Counter, Gauge, Registry } from 'prom-client';
import type { MqttStats } from '../mqtt/mqtt-stats.js';
import { TWOWAY_EVENTS } from './activity-recorder.js';
import type { Store } from '../store/store.js';

/** What one server can tell about its parts that are not in the store. */
export interface GaugeSources {
  store: Store;
  /** The MQTT front door, when it is on. */
  mqtt?: () => { connections: number; inFlight: number; stats: MqttStats } | undefined;
  /** Hydration snapshots held in this process's memory. */
  snapshots?: () => { open: number; bytes: number };
}

type Row = Record<string, string | null>;

/**
 * Gauges read at scrape time: the fleet's state from the store (so every server
 * process on one PostgreSQL reports the same fleet-wide figures), the MQTT
 * front door's connections and counters, the store's connection pool. A few
 * grouped counts per scrape; the staged-rows count by reason scans the backlog,
 * which stays cheap while backlogs are the exception they should be.
 */
export function storeRegistry(sources: GaugeSources): Registry {
  const registry = new Registry();
  const registers = [registry];
  const { store } = sources;

  /** A gauge whose labelled values come from one grouped query. */
  const grouped = (name: string, help: string, label: string, sql: string, known: readonly string[]) =>
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers,
      // Every server process reads the same store: a cluster's sum of these would count the fleet once per worker.
      aggregator: 'first',
      async collect() {
        const { rows } = await store.query<Row>(sql);
        this.reset();
        // Known values are always present (as 0), so a series does not vanish when it empties.
        for (const value of known) this.set({ [label]: value }, 0);
        for (const row of rows) this.set({ [label]: row.k ?? 'none' }, Number(row.n));
      },
    });

  grouped('syncline_staged_rows', 'Rows held back from the mirrors, by reason', 'reason', 'SELECT reason AS k, count(*)::text AS n FROM edge_staged_rows GROUP BY reason', ['schema_review', 'lineage_paused', 'materialization_failed']);
  grouped('syncline_paused_lineages', 'Lineages whose rows are staged instead of mirrored, by cause', 'cause', `SELECT pause_cause AS k, count(*)::text AS n FROM edge_table_lineages WHERE status = 'paused' GROUP BY pause_cause`, ['schema_review', 'materialization_failed']);
  grouped('syncline_flow_paused_lineages', 'Lineages whose device was told to stop sending, by reason', 'reason', `SELECT pause_reason AS k, count(*)::text AS n FROM edge_lineage_flow WHERE device_state = 'paused' GROUP BY pause_reason`, ['volume_backpressure', 'circuit_breaker', 'operator_pause']);
  grouped('syncline_lineages', 'Lineages (one per device and source table), by status', 'status', 'SELECT status AS k, count(*)::text AS n FROM edge_table_lineages GROUP BY status', ['active', 'paused']);
  grouped('syncline_devices', 'Registered devices, by state', 'state', `SELECT CASE WHEN revoked_at IS NULL THEN 'active' ELSE 'revoked' END AS k, count(*)::text AS n FROM devices GROUP BY 1`, ['active', 'revoked']);
  grouped('syncline_schema_reviews_open', 'Schema reviews waiting for an operator, by status', 'status', `SELECT status AS k, count(*)::text AS n FROM edge_schema_reviews WHERE status IN ('queued', 'in_review') GROUP BY status`, ['queued', 'in_review']);
  grouped(
    'syncline_replay_rows',
    'Staged rows of replays in progress: total to handle, replayed into the mirror, kept staged',
    'state',
    `SELECT k, sum(n)::text AS n FROM edge_replay_intents, LATERAL (VALUES ('total', rows_total), ('replayed', rows_replayed), ('kept', rows_kept)) AS v(k, n)
     WHERE state = 'pending' GROUP BY k`,
    ['total', 'replayed', 'kept'],
  );
  grouped('syncline_replays_pending', 'Replays of staged rows waiting or running, by state', 'state', `SELECT state AS k, count(*)::text AS n FROM edge_replay_intents WHERE state IN ('pending', 'blocked') GROUP BY state`, ['pending', 'blocked']);
  grouped(
    'syncline_twoway_fleet_events',
    'Two-way events of every server process on this database (written every few seconds): pushes by outcome, conflicting rows, pulls, pulled bundles, snapshots started',
    'event',
    `SELECT name AS k, value::text AS n FROM syncline_counters WHERE name IN (${TWOWAY_EVENTS.map((e) => `'${e}'`).join(', ')})`,
    TWOWAY_EVENTS,
  );
  new Gauge({
    name: 'syncline_twoway_scopes',
    help: 'Two-way sync scopes with at least one committed bundle',
    registers,
    aggregator: 'first',
    async collect() {
      const { rows } = await store.query<Row>('SELECT count(*)::text AS n FROM sync_scopes');
      this.set(Number(rows[0]?.n ?? 0));
    },
  });

  if (sources.snapshots) {
    const snapshots = sources.snapshots;
    new Gauge({ name: 'syncline_twoway_snapshots_open', help: 'Hydration snapshots held by this process', registers, collect() { this.set(snapshots().open); } });
    new Gauge({ name: 'syncline_twoway_snapshot_bytes', help: 'Encoded bytes of the snapshots this process holds', registers, collect() { this.set(snapshots().bytes); } });
  }
  if (sources.mqtt) mqttGauges(registers, sources.mqtt);
  if (store.poolStats) {
    const pool = () => store.poolStats!();
    new Gauge({
      name: 'syncline_store_pool_connections',
      help: 'PostgreSQL pool connections: total open, idle, and requests waiting for one',
      labelNames: ['state'] as const,
      registers,
      collect() {
        const stats = pool();
        this.set({ state: 'total' }, stats.total);
        this.set({ state: 'idle' }, stats.idle);
        this.set({ state: 'waiting' }, stats.waiting);
      },
    });
  }
  return registry;
}

function mqttGauges(registers: Registry[], mqtt: NonNullable<GaugeSources['mqtt']>): void {
  new Gauge({ name: 'syncline_mqtt_connections', help: 'Clients connected to the embedded MQTT broker (0 with an external broker)', registers, collect() { this.set(mqtt()?.connections ?? 0); } });
  new Gauge({ name: 'syncline_mqtt_inflight_messages', help: 'Device messages taken from MQTT and not yet answered', registers, collect() { this.set(mqtt()?.inFlight ?? 0); } });
  const counters: [keyof MqttStats, string][] = [
    ['authFailures', 'syncline_mqtt_auth_failures_total'],
    ['deniedPublishes', 'syncline_mqtt_denied_publishes_total'],
    ['deniedSubscribes', 'syncline_mqtt_denied_subscribes_total'],
    ['unknownDevices', 'syncline_mqtt_unknown_device_messages_total'],
    ['controlsSent', 'syncline_mqtt_controls_sent_total'],
    ['controlAcks', 'syncline_mqtt_control_acks_total'],
  ];
  for (const [field, name] of counters) {
    new Counter({
      name,
      help: `MQTT front door: ${field} since the server started`,
      registers,
      collect() {
        this.reset();
        this.inc(mqtt()?.stats[field] ?? 0);
      },
    });
  }
}
