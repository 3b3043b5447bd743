import { z } from 'zod';

/** POST /v1/admin/devices. The name is trimmed and checked (1 to 200 characters, no NUL) by createDevice. */
export const deviceCreateBody = z.object({ name: z.string().describe('1 to 200 characters'), project_id: z.string().optional() });

/** POST /v1/telemetry/mappings/:id/approve: one decision per column but the time column (checked against the mapping by the server). */
export const telemetryApproveBody = z.object({
  time_unit: z.enum(['auto', 's', 'ms', 'us']).optional(),
  columns: z.array(z.object({ name: z.string(), action: z.enum(['point', 'ignore']), point: z.string().optional(), kind: z.enum(['numeric', 'text', 'boolean']).optional() })),
});

/** POST /v1/lineages/:id/pause and /v1/admin/devices/:id/pause: an optional note for the audit log. */
export const pauseBody = z.strictObject({ note: z.string().min(1).max(500).optional().describe('why, for the audit log (1 to 500 characters)') });
export type PauseBody = z.infer<typeof pauseBody>;

/** POST /v1/lineages/:id/retry-rejected: nothing to choose (every refused row of the lineage is tried again, in order); other fields are refused. */
export const retryRejectedBody = z.strictObject({});
