import { z } from 'zod';
import { retryRejectedBody } from '../../protocol/admin-requests.js';
import { SynclineError } from '../../protocol/errors.js';
import { pauseBody, type PauseBody } from '../../protocol/admin-requests.js';
import { PG_TYPES, pgSafeText, type PgType } from '../type-mapping.js';
import { ADMIN_ROLES, type AdminRole } from './admin-tokens.js';
import type { ApproveRequest } from './approve.js';
import { COALESCING_MODES, type Coalescing } from './coalescing.js';
import type { RejectRequest } from './review-actions.js';

/** The bodies of the governance routes, validated with the protocol's schema library. */

const version = z.number().int().min(1);
// Names are checked against the reviewed schema (and mirror names validated) by planColumns;
// this only bounds what is read.
const name = z.string().min(1).max(200);
const pgType = z.enum(PG_TYPES as [PgType, ...PgType[]]);

const columnAction = z.discriminatedUnion('action', [
  z.strictObject({ name, action: z.literal('mirror') }),
  z.strictObject({ name, action: z.literal('mirror_as'), target: name.optional(), pg_type: pgType.optional() }),
  z.strictObject({ name, action: z.literal('ignore') }),
  z.strictObject({ name, action: z.literal('defer') }),
]);

export const approveBody = z.strictObject({ action_version: version, columns: z.array(columnAction).min(1).max(2000) });
export const rejectBody = z.strictObject({ action_version: version, reason: z.string().trim().min(1).max(2000) });
export const claimBody = z.strictObject({ force: z.boolean().optional() });
export const releaseBody = z.strictObject({ action_version: version });
export const purgeBody = z.strictObject({ schema_hash: z.string().regex(/^[0-9a-f]{64}$/).optional() });
export const tokenBody = z.strictObject({ name: z.string().min(1).max(200), role: z.enum(ADMIN_ROLES as [AdminRole, ...AdminRole[]]) });
export const projectSettingsBody = z.strictObject({ coalescing: z.enum(COALESCING_MODES as [Coalescing, ...Coalescing[]]) });

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body ?? {});
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join('.') : '(body)';
  throw new SynclineError('invalid_request', `${field}: ${issue?.message ?? 'invalid'}`, { field });
}

export const parseApprove = (body: unknown): ApproveRequest => parse(approveBody, body) as ApproveRequest;
export const parseReject = (body: unknown): RejectRequest => parse(rejectBody, body);
export const parseClaim = (body: unknown): { force?: boolean } => parse(claimBody, body);
export const parseRelease = (body: unknown): { action_version: number } => parse(releaseBody, body);
export const parseRetryRejected = (body: unknown): Record<string, never> => parse(retryRejectedBody, body);
export const parsePurge = (body: unknown): { schema_hash?: string } => parse(purgeBody, body);
export const parseTokenCreate = (body: unknown): { name: string; role: AdminRole } => parse(tokenBody, body);
export const parseProjectSettings = (body: unknown): { coalescing: Coalescing } => parse(projectSettingsBody, body);
export function parsePause(body: unknown): PauseBody {
  const parsed = parse(pauseBody, body);
  // The note goes into the audit log's jsonb, which holds no NUL and no lone surrogate.
  if (parsed.note !== undefined && !pgSafeText(parsed.note)) throw new SynclineError('invalid_request', 'note: cannot hold NUL or lone surrogates', { field: 'note' });
  return parsed;
}
