import { randomBytes } from 'node:crypto';
import { uuidv7 } from 'uuidv7';
import { SynclineError } from '../../protocol/errors.js';
import { isUuid } from '../auth/devices.js';
import { hashToken, secretsEqual } from '../auth/tokens.js';
import type { Queryable } from '../store/store.js';
import { recordAudit } from './audit.js';

/**
 * Who may do what on the admin API:
 * - viewer: read devices, lineages, mirror rows, reviews, staged rows, the audit log;
 * - operator: also claim, approve and reject reviews, purge rejected rows, resume lineages;
 * - admin: also create and revoke devices and admin tokens, and change project settings.
 * The token behind each action is named in the audit log.
 */
export type AdminRole = 'viewer' | 'operator' | 'admin';
export const ADMIN_ROLES: readonly AdminRole[] = ['viewer', 'operator', 'admin'];

const RANK: { readonly [R in AdminRole]: number } = { viewer: 0, operator: 1, admin: 2 };

export function isAdminRole(value: unknown): value is AdminRole {
  return typeof value === 'string' && (ADMIN_ROLES as readonly string[]).includes(value);
}

export function roleAllows(have: AdminRole, need: AdminRole): boolean {
  return RANK[have] >= RANK[need];
}

/** An authenticated caller of the admin API; `label` is what audit records name. */
export interface Actor {
  id: string;
  role: AdminRole;
  label: string;
}

/** The token the server was started with: full rights, named in audit records as such. */
export const BOOTSTRAP_ACTOR: Actor = { id: 'bootstrap', role: 'admin', label: 'bootstrap admin token' };

export const ADMIN_TOKEN_PREFIX = 'sla_';
const MAX_TOKEN_LENGTH = 512;
const MAX_NAME_LENGTH = 200;

export interface AdminTokenRecord {
  id: string;
  name: string;
  role: AdminRole;
  created_by: string;
  created_at: string;
  revoked_at: string | null;
}

interface TokenRow {
  id: string;
  name: string;
  role: AdminRole;
  created_by: string;
  created_at: Date;
  revoked_at: Date | null;
}

const toRecord = (row: TokenRow): AdminTokenRecord => ({
  ...row,
  created_at: row.created_at.toISOString(),
  revoked_at: row.revoked_at ? row.revoked_at.toISOString() : null,
});

const labelOf = (row: { id: string; name: string }) => `${row.name} (token ${row.id})`;

/** Creates a role token; the token exists only in this return value, the database keeps its hash. */
export async function createAdminToken(db: Queryable, options: { name: string; role: AdminRole; createdBy: Actor }): Promise<AdminTokenRecord & { token: string }> {
  const name = options.name.trim();
  if (name.length === 0 || name.length > MAX_NAME_LENGTH || name.includes('\u0000')) {
    throw new SynclineError('invalid_request', `a token name is 1 to ${MAX_NAME_LENGTH} characters without NUL`, { field: 'name' });
  }
  if (!isAdminRole(options.role)) throw new SynclineError('invalid_request', `role must be one of ${ADMIN_ROLES.join(', ')}`, { field: 'role' });
  const token = `${ADMIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
  const { rows } = await db.query<TokenRow>(
    `INSERT INTO admin_tokens (id, name, role, token_hash, created_by) VALUES ($1, $2, $3, $4, $5)
     RETURNING id, name, role, created_by, created_at, revoked_at`,
    [uuidv7(), name, options.role, hashToken(token), options.createdBy.label],
  );
  const record = toRecord(rows[0]!);
  await recordAudit(db, { actor: options.createdBy.label, action: 'token.create', detail: { token_id: record.id, name: record.name, role: record.role } });
  return { ...record, token };
}

export async function listAdminTokens(db: Queryable): Promise<AdminTokenRecord[]> {
  const { rows } = await db.query<TokenRow>('SELECT id, name, role, created_by, created_at, revoked_at FROM admin_tokens ORDER BY id');
  return rows.map(toRecord);
}

/** Revokes a token; revoking twice keeps the first time. */
export async function revokeAdminToken(db: Queryable, id: string, actor: Actor): Promise<AdminTokenRecord> {
  const { rows } = isUuid(id)
    ? await db.query<TokenRow>(
        `UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING id, name, role, created_by, created_at, revoked_at`,
        [id],
      )
    : { rows: [] };
  if (!rows[0]) throw new SynclineError('not_found', 'no such admin token', { token_id: id.slice(0, 64) });
  await recordAudit(db, { actor: actor.label, action: 'token.revoke', detail: { token_id: rows[0].id, name: rows[0].name, role: rows[0].role } });
  return toRecord(rows[0]);
}

/**
 * The actor behind a bearer token: the bootstrap token (compared in constant
 * time), else a role token that is not revoked. One message for every failure.
 */
export async function authenticateAdmin(db: Queryable, bootstrapToken: string, presented: string | undefined): Promise<Actor> {
  const refuse = () => new SynclineError('unauthorized', 'missing or wrong admin token');
  if (presented === undefined || presented.length > MAX_TOKEN_LENGTH) throw refuse();
  if (secretsEqual(presented, bootstrapToken)) return BOOTSTRAP_ACTOR;
  if (!presented.startsWith(ADMIN_TOKEN_PREFIX)) throw refuse();
  const { rows } = await db.query<{ id: string; name: string; role: AdminRole; revoked_at: Date | null }>(
    'SELECT id, name, role, revoked_at FROM admin_tokens WHERE token_hash = $1',
    [hashToken(presented)],
  );
  const row = rows[0];
  if (!row || row.revoked_at !== null) throw refuse();
  return { id: row.id, role: row.role, label: labelOf(row) };
}
