// MQTT transport defaults, apart from the transport so `agent --help` shows them without loading the MQTT client.
export const MQTT_ACK_TIMEOUT_MS = 30_000;
export const MQTT_MAX_IN_FLIGHT = 8;
