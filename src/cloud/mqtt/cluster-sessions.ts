import cluster from 'node:cluster';

/**
 * Under `syncline server --workers N` every worker runs a broker of its own, and
 * one broker closes a client id's older connection when a new one signs in (MQTT
 * 3.1.1, 3.1.4); across brokers nothing would. So a worker announces each device
 * that signs in to its broker, the primary passes that on to every other worker,
 * and each closes that device's sessions in its own broker: a device that
 * reconnected to another worker while its old connection lingers (half-open, not
 * yet timed out) has one session, and flow control does not count it reachable
 * where it no longer is.
 */
const SIGNED_IN = 'syncline:mqtt-signed-in';

interface SignedIn {
  type: typeof SIGNED_IN;
  deviceId: string;
}

function isSignedIn(message: unknown): message is SignedIn {
  return typeof message === 'object' && message !== null && (message as { type?: unknown }).type === SIGNED_IN && typeof (message as { deviceId?: unknown }).deviceId === 'string';
}

/** In a worker: tells the other workers' brokers that the device signed in here. */
export function announceSignIn(deviceId: string): void {
  if (process.connected) process.send?.({ type: SIGNED_IN, deviceId } satisfies SignedIn);
}

/** In a worker: calls `close` for every device that signed in to another worker's broker. Returns the function that stops listening. */
export function onSignInElsewhere(close: (deviceId: string) => void): () => void {
  const listener = (message: unknown) => {
    if (isSignedIn(message)) close(message.deviceId);
  };
  process.on('message', listener);
  return () => process.off('message', listener);
}

/** In the primary: passes each worker's sign-in on to every other worker. */
export function relaySignIns(): void {
  cluster.on('message', (from, message: unknown) => {
    if (!isSignedIn(message)) return;
    for (const worker of Object.values(cluster.workers ?? {})) {
      if (worker && worker !== from && worker.isConnected()) worker.send(message);
    }
  });
}
