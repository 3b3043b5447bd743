/** Counters of the MQTT front door since the server started; operators read them at GET /v1/admin/mqtt/stats. */
export interface MqttStats {
  /** Connections the embedded broker refused (bad token, unknown certificate, wrong client id). */
  authFailures: number;
  /** Publishes the embedded broker refused by its ACL (the device is disconnected). */
  deniedPublishes: number;
  /** Subscriptions the embedded broker refused by its ACL. */
  deniedSubscribes: number;
  batchesReceived: number;
  batchesAcked: number;
  /** Batches answered with batch_error (invalid, refused, or a server fault the device retries). */
  batchesRefused: number;
  /** Messages on a device topic whose device is unknown, revoked or of another project: dropped unanswered. */
  unknownDevices: number;
  controlsSent: number;
  controlAcks: number;
  /** Packets refused for declaring a size over the limit (the client is disconnected before the body is read). */
  oversizedPackets: number;
  /** Sessions closed because their device was revoked. */
  revokedDisconnects: number;
}

export function newMqttStats(): MqttStats {
  return { authFailures: 0, deniedPublishes: 0, deniedSubscribes: 0, batchesReceived: 0, batchesAcked: 0, batchesRefused: 0, unknownDevices: 0, controlsSent: 0, controlAcks: 0, oversizedPackets: 0, revokedDisconnects: 0 };
}
