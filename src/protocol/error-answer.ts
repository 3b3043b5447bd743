import { z } from 'zod';

/**
 * The body of every refusal, HTTP's and the admin API's alike (SynclineError's
 * toJSON). A file of its own so a device reading a refusal loads this schema
 * only, not the admin API's answers.
 */
export const errorAnswerSchema = z.object({ error: z.string().describe('code from the error catalogue'), message: z.string(), context: z.record(z.string(), z.unknown()) });
export type ErrorAnswer = z.infer<typeof errorAnswerSchema>;
