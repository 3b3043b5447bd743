import { z } from 'zod';

/**
 * A value as the protocol carries it (values.ts): null, number, text, or a tagged
 * exact integer, real or blob. A file of its own so the device's two-way client
 * reads pulled rows with it without loading the admin API's answers.
 */
export const wireValueSchema = z.union([
  z.null(),
  z.number(),
  z.string(),
  z.strictObject({ $int: z.string() }),
  z.strictObject({ $real: z.string() }),
  z.strictObject({ $blob: z.string().describe('base64') }),
]);
export type WireValueAnswer = z.infer<typeof wireValueSchema>;
