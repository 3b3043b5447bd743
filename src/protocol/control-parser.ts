import type { ControlMessage } from './control.js';

/**
 * parseControlMessage, loaded when the first control arrives. Controls reach a
 * device only when the cloud applies flow control, and their schemas load zod
 * (its ~60 modules are ~3 MB of an idle agent's heap): an HTTP agent the cloud
 * never pauses never loads it.
 */
export async function controlParser(): Promise<(input: unknown) => ControlMessage> {
  return (await import('./control.js')).parseControlMessage;
}
