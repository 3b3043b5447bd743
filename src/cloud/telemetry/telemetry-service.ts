import type { Logger } from 'pino';
import type { BatchAck } from '../../protocol/batch.js';
import type { TelemetryBatch } from '../../protocol/telemetry-batch.js';
import type { DeviceIdentity } from '../auth/devices.js';
import type { GovernancePolicy } from '../governance/policy.js';
import type { GroupCommitter } from '../ingest/group-commit.js';
import type { Store } from '../store/store.js';
import { TelemetryIngest } from './ingest-telemetry-batch.js';
import { TelemetryMaintenance, TelemetryPartitions } from './telemetry-partitions.js';

export interface TelemetryServiceOptions {
  store: Store;
  policy: GovernancePolicy;
  logger: Logger;
  /** Days of values kept (whole daily partitions are dropped); 0 keeps everything. */
  retentionDays?: number;
  /** Group commit shared with the row path. */
  group?: GroupCommitter;
}

/** The telemetry path of one server: ingest shared by both front doors, and the partition maintenance loop. */
export class TelemetryService {
  readonly store: Store;
  readonly partitions: TelemetryPartitions;
  readonly maintenance: TelemetryMaintenance;
  readonly #ingest: TelemetryIngest;

  constructor(options: TelemetryServiceOptions) {
    this.store = options.store;
    this.partitions = new TelemetryPartitions(options.store);
    const logger = options.logger.child({ component: 'telemetry' });
    this.#ingest = new TelemetryIngest(options.store, { policy: options.policy, partitions: this.partitions, logger, ...(options.group ? { group: options.group } : {}) });
    this.maintenance = new TelemetryMaintenance(this.partitions, { retentionDays: options.retentionDays ?? 0, logger });
  }

  ingest(device: DeviceIdentity, batch: TelemetryBatch, byteCount: number): Promise<BatchAck> {
    return this.#ingest.ingest(device, batch, byteCount);
  }
}
