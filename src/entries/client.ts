// `syncline/client`: the device SDK. Capture a SQLite file and publish it to the
// cloud (Agent + a transport), read its local change stream (changes), and
// two-way sync shared tables (SharedSync).
export { Agent } from '../device/agent.js';
export type { AgentOptions } from '../device/agent.js';
export type { AgentStatus } from '../device/agent-status.js';
export type { PublisherOptions, PublisherStats } from '../device/publisher/publisher-options.js';
export { HttpTransport } from '../transport/http-transport.js';
export type { HttpTransportOptions } from '../transport/http-transport.js';
export { MqttTransport } from '../transport/mqtt-transport.js';
export type { MqttTransportOptions } from '../transport/mqtt-transport.js';
export { TransportError, isTransportError } from '../transport/transport.js';
export type { Transport, EncodedRowBatch } from '../transport/transport.js';
export { changes, ChangeStream } from '../device/change-stream/change-stream.js';
export type { ChangeListener } from '../device/change-stream/change-stream.js';
export type { ChangeEvent, ChangeOp, ChangeOrigin, RowValues } from '../device/change-stream/change-stream-event.js';
export type { ChangeStreamOptions, TableSelection } from '../device/change-stream/change-stream-options.js';
export { SharedSync } from '../device/twoway/shared-sync.js';
export type { SharedSyncOptions, ChangeEvent as SharedChangeEvent, PushReport, PullReport, SyncReport } from '../device/twoway/shared-sync.js';
export type { ConflictRecord } from '../device/twoway/conflict-log.js';
export type { ConflictResolver, ConflictCase, Resolution } from '../device/twoway/resolve-conflict.js';
export { SynclineError, isSynclineError } from '../protocol/errors.js';
export type { SqlValue } from '../protocol/values.js';
