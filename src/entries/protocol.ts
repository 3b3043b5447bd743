// `syncline/protocol`: the wire format, shared by devices, the cloud and anyone
// writing their own client. No Node built-ins are needed to use the types.
export { ROW_BATCH_FORMAT_VERSION, Routes, Headers, PublisherDefaults, SERVER_MAX_ROWS_PER_BATCH, SERVER_BODY_LIMIT_BYTES, RESERVED_PREFIX, DefaultPorts } from '../protocol/constants.js';
export { rowBatchSchema, parseRowBatch, isUuidV7 } from '../protocol/batch.js';
export type { RowOp, WireRowBatch, WireRow, RowBatch, DecodedRow, BatchAck } from '../protocol/batch.js';
export { parseControlMessage, parseDownlink, parseControlAck, PAUSE_REASONS, RESUME_REASONS } from '../protocol/control.js';
export type { ControlMessage, DownlinkMessage, ControlAck, PauseReason, ResumeReason, BatchAckMessage, BatchErrorMessage } from '../protocol/control.js';
export { ErrorCodes, SynclineError, isSynclineError } from '../protocol/errors.js';
export type { ErrorCode, ErrorContext } from '../protocol/errors.js';
export { encodeValue, decodeValue, sameValue, storageClass } from '../protocol/values.js';
export type { SqlValue, WireValue } from '../protocol/values.js';
export { affinityOf, schemaFingerprint } from '../protocol/schema.js';
export type { Affinity, ColumnInfo, TableKey } from '../protocol/schema.js';
export {
  SHARED_FORMAT_VERSION,
  SharedRoutes,
  SOURCE_HEADER,
  SharedDefaults,
  sharedTableSchema,
  sharedColumnSchema,
  wireRowChangeSchema,
  pushBeginSchema,
  pushChunkSchema,
  CONFLICT_POLICIES,
  DIRECTIONS,
} from '../protocol/shared-sync.js';
export type {
  SharedTable,
  SharedColumn,
  SharedColumnType,
  ConflictPolicy,
  Direction,
  ScopeKind,
  WireRowChange,
  WireBundle,
  PushAnswer,
  PullAnswer,
  SnapshotAnswer,
  SnapshotChunkAnswer,
  SharedConfigAnswer,
} from '../protocol/shared-sync.js';
export { TOPIC_PREFIX, TopicChannels, deviceRoot, deviceTopic, parseDeviceTopic, sharedWakeTopic } from '../protocol/topics.js';
export type { TopicChannel } from '../protocol/topics.js';
