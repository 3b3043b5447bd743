// `syncline/client` in a browser (the "browser" export condition; bundled into
// dist/browser/ with its SQLite worker and sqlite3.wasm). The database lives in
// OPFS through a dedicated Worker; no Node built-ins are reachable from here.
export { OpfsDriver, SqliteWorkerError } from '../device/driver/opfs-driver.js';
export type { OpenOpfsOptions, WorkerLike } from '../device/driver/opfs-driver.js';
export type { SqliteDriver, SqliteQueryable, SqliteParam, SqliteRow, SqliteRunResult, SqliteValue } from '../device/driver/sqlite-driver.js';
export { SynclineError, isSynclineError } from '../protocol/errors.js';
export { TransportError, isTransportError } from '../transport/transport.js';
export type { SqlValue } from '../protocol/values.js';
export { changes, ChangeStream } from '../device/change-stream/change-stream.js';
export type { ChangeListener } from '../device/change-stream/change-stream.js';
export type { ChangeEvent, ChangeOp, ChangeOrigin, RowValues } from '../device/change-stream/change-stream-event.js';
export type { ChangeStreamOptions, TableSelection } from '../device/change-stream/change-stream-options.js';
export { SharedSync } from '../device/twoway/shared-sync.js';
export type { SharedSyncOptions, ChangeEvent as SharedChangeEvent, PushReport, PullReport, SyncReport } from '../device/twoway/shared-sync.js';
export type { ConflictRecord } from '../device/twoway/conflict-log.js';
export type { ConflictResolver, ConflictCase, Resolution } from '../device/twoway/resolve-conflict.js';
