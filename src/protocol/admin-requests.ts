import { z } from 'zod';

/** POST /v1/admin/devices. The name is trimmed and checked (1 to 200 characters, no NUL) by createDevice. */
export const deviceCreateBody = z.object({ name: z.string().describe('1 to 200 characters'), project_id: z.string().optional() });
