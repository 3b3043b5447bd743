import { adminTokenCreatedSchema, adminTokenListSchema, adminTokenSchema, auditPageSchema, projectListSchema, projectSchema } from '../protocol/admin-answers.js';
import { Routes } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { at, changeKey, need, type Command } from './admin-reviews.js';
import { formatTable, listJson, printResult } from './output.js';

/** `syncline admin audit`, `token ...` and `project ...`, keyed by group and action. */
export const accessCommands: Record<string, Command> = {
  async audit(client, options, args) {
    if (args.length > 0) throw new SynclineError('invalid_config', `audit takes no arguments, got "${args.join(' ')}"`);
    const query = new URLSearchParams({ limit: String(options.limit) });
    for (const [key, value] of [['lineage_id', options.lineage], ['review_id', options.review], ['action', options.action], ['actor', options.actor], ['before', options.before]] as const) if (value) query.set(key, value);
    const page = await client.request('GET', `${Routes.audit}?${query}`, auditPageSchema);
    printResult(listJson(page.entries, page.next), options.json, () => `${formatTable(page.entries, ['id', 'at', 'actor', 'action', 'lineage_id', 'review_id', 'detail'])}${page.next ? `\nolder: --before ${page.next}` : ''}`);
  },
  async 'token create'(client, options) {
    const created = await client.request('POST', Routes.adminTokens, adminTokenCreatedSchema, { role: need(options.role, '--role'), name: need(options.name, '--name') });
    printResult(created, options.json, () => `admin token ${String(created.id)} (${String(created.role)}) created.\ntoken (shown once, keep it secret):\n  ${String(created.token)}`);
  },
  async 'token list'(client, options) {
    const { tokens } = await client.request('GET', Routes.adminTokens, adminTokenListSchema);
    printResult(listJson(tokens), options.json, () => formatTable(tokens, ['id', 'name', 'role', 'created_by', 'created_at', 'revoked_at']));
  },
  async 'token revoke'(client, options, [id]) {
    const revoked = await client.request('POST', at(Routes.adminTokenRevoke, need(id, 'TOKEN_ID')), adminTokenSchema);
    printResult(revoked, options.json, () => `admin token ${String(revoked.id)} revoked at ${String(revoked.revoked_at)}`);
  },
  async 'project list'(client, options) {
    const { projects } = await client.request('GET', Routes.projects, projectListSchema);
    printResult(listJson(projects), options.json, () => formatTable(projects, ['id', 'org_id', 'name', 'coalescing', 'created_at']));
  },
  async 'project set-coalescing'(client, options, [id, mode]) {
    const body = { coalescing: need(mode, 'none|project') };
    const project = await client.request('POST', at(Routes.projectSettings, need(id, 'PROJECT_ID')), projectSchema, body, changeKey(options));
    printResult(project, options.json, () => `project ${String(project.id)}: coalescing ${String(project.coalescing)}`);
  },
};
