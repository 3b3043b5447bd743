import type * as Control from './control.js';
import type * as ErrorAnswer from './error-answer.js';

/*
 * The schemas a device reads the cloud's answers with (acks, controls,
 * refusals), loaded when the first answer arrives. They load zod (its ~60
 * modules are ~3 MB of an idle agent's heap): an HTTP agent that has sent
 * nothing yet has not loaded it. The module promise is kept: every ack is read
 * with it, and an import() of a loaded module still goes through the module
 * loader (3 µs in plain Node, ~90 under tsx; reading an ack takes ~1.5).
 */

let control: Promise<typeof Control> | undefined;
let errorAnswer: Promise<typeof ErrorAnswer> | undefined;

export function controlSchemas(): Promise<typeof Control> {
  return (control ??= import('./control.js'));
}

export async function controlParser(): Promise<typeof Control.parseControlMessage> {
  return (await controlSchemas()).parseControlMessage;
}

export async function errorAnswerSchema(): Promise<typeof ErrorAnswer.errorAnswerSchema> {
  return (await (errorAnswer ??= import('./error-answer.js'))).errorAnswerSchema;
}
