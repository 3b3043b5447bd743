import { randomUUID } from 'node:crypto';
import { sleep } from '../protocol/backoff.js';
import {
  approveAnswerSchema,
  purgeAnswerSchema,
  rejectAnswerSchema,
  replayAnswerSchema,
  resumeAnswerSchema,
  retryRejectedAnswerSchema,
  reviewDetailSchema,
  reviewListSchema,
  reviewSchema,
  stagedPageSchema,
  type ReplayIntentAnswer,
} from '../protocol/admin-answers.js';
import { Routes } from '../protocol/constants.js';
import { SynclineError } from '../protocol/errors.js';
import { accessCommands } from './admin-access.js';
import { AdminClient } from './admin-client.js';
import { adminOptions } from './admin-command.js';
import { checkSafeTypes, columnActions } from './approve-actions.js';
import { helpText, parseCommand, type OptionTable } from './options.js';
import { formatRecord, formatTable, listJson, printResult } from './output.js';
import { perSecond, progressLine } from './progress.js';
import { formatReview } from './review-format.js';

/** Built on first use: admin-command imports this module, so its table is read at run time, not load time. */
const governanceOptions = () =>
  ({
    server: adminOptions.server,
    adminToken: adminOptions.adminToken,
    json: adminOptions.json,
    status: { flag: 'status', kind: 'string', description: 'comma list of review statuses (reviews list), e.g. queued,in_review' },
    lineage: { flag: 'lineage', kind: 'string', description: 'only reviews or audit entries of this lineage' },
    device: { flag: 'device', kind: 'string', description: 'only reviews of this device (reviews list)' },
    review: { flag: 'review', kind: 'string', description: 'only audit entries of this review (audit)' },
    action: { flag: 'action', kind: 'string', description: 'only audit entries of this action, or a prefix like review. (audit)' },
    actor: { flag: 'actor', kind: 'string', description: 'only audit entries by this actor (audit)' },
    limit: { flag: 'limit', kind: 'integer', default: 50, description: 'entries per page' },
    after: { flag: 'after', kind: 'string', description: 'cursor from the previous page (reviews list, reviews staged)' },
    before: { flag: 'before', kind: 'string', description: 'cursor from the previous page (audit)' },
    version: { flag: 'version', kind: 'integer', description: 'action version to quote; without it the command claims the review first and uses the claim' },
    force: { flag: 'force', kind: 'boolean', default: false, description: 'take over a review someone else claimed (reviews claim)' },
    allMirror: { flag: 'all-mirror', kind: 'boolean', default: false, description: 'mirror every incoming column the other flags do not name (reviews approve)' },
    mirror: { flag: 'mirror', kind: 'string', description: 'comma list of columns to mirror as they are (reviews approve)' },
    mirrorAs: { flag: 'mirror-as', kind: 'string', description: 'comma list of column=target, column=target:type or column=:type (reviews approve)' },
    ignore: { flag: 'ignore', kind: 'string', description: 'comma list of columns never to store (reviews approve)' },
    defer: { flag: 'defer', kind: 'string', description: 'comma list of columns to decide later; the lineage stays paused (reviews approve)' },
    columnsJson: { flag: 'columns-json', kind: 'string', description: 'column actions as JSON [{"name","action","target","pg_type"}], for names with commas or "=" (reviews approve)' },
    reason: { flag: 'reason', kind: 'string', description: 'why the schema is rejected (reviews reject)' },
    schema: { flag: 'schema', kind: 'string', description: 'schema hash (reviews staged, reviews purge)' },
    role: { flag: 'role', kind: 'string', choices: ['viewer', 'operator', 'admin'], description: 'role of a new admin token (token create)' },
    name: { flag: 'name', kind: 'string', description: 'name of a new admin token (token create)' },
    idempotencyKey: { flag: 'idempotency-key', kind: 'string', description: 'Idempotency-Key for the change (default: a new one per run); rerun with the same key to repeat safely' },
    help: adminOptions.help,
  }) satisfies OptionTable;

const USAGE = `syncline admin reviews|audit|token|project <action> [options]

schema reviews (operator role to change, viewer to read):
  reviews list [--status queued,in_review] [--lineage ID] [--device ID]
  reviews show REVIEW_ID                 incoming columns, diff against the bound schema, staged samples, history
  reviews claim REVIEW_ID [--force]      prints the action version approve and reject quote
  reviews release REVIEW_ID [--version N]
  reviews approve REVIEW_ID [--version N] --all-mirror | one action per column:
                  [--mirror a,b] [--mirror-as c=target:type] [--ignore d] [--defer e] [--columns-json JSON]
  reviews reject REVIEW_ID --reason TEXT [--version N]    rows stay staged
  reviews staged LINEAGE_ID [--schema HASH] [--limit N] [--after ID]
  reviews purge LINEAGE_ID [--schema HASH]   delete rows staged under rejected schemas (audited)
  reviews resume LINEAGE_ID              replay staged rows after a materialization failure or a purge
  reviews retry-rejected LINEAGE_ID      try the rows the mirror refused (row_rejected) again, in order
  reviews replay LINEAGE_ID              progress of the lineage's latest replay

audit log (viewer role):
  audit [--lineage ID] [--review ID] [--action review.] [--actor NAME] [--limit N] [--before ID]

admin tokens and projects (admin role; listing projects: viewer):
  token create --role viewer|operator|admin --name NAME   prints the token once
  token list
  token revoke TOKEN_ID
  project list
  project set-coalescing PROJECT_ID none|project`;

export type GovernanceOptions = ReturnType<typeof parseCommand<ReturnType<typeof governanceOptions>>>['options'];
export type Command = (client: AdminClient, options: GovernanceOptions, args: string[]) => Promise<void>;
export const at = (route: string, id: string) => route.replace(':id', encodeURIComponent(id));

export function need(value: string | undefined, what: string): string {
  if (!value) throw new SynclineError('invalid_config', `${what} is required (run \`syncline admin reviews --help\`)`, { field: what });
  return value;
}

/** Every change carries an Idempotency-Key, so the client can retry it after a lost answer without acting twice. */
export const changeKey = (options: GovernanceOptions, step = '') => ({ idempotencyKey: `${options.idempotencyKey ?? randomUUID()}${step}` });

/** `syncline admin reviews|audit|token|project ...`; argv starts with the group. */
export async function runAdminGovernance(argv: string[]): Promise<number> {
  const table = governanceOptions();
  if (argv.length <= 1 && argv[0] !== 'audit') {
    process.stdout.write(`${helpText(USAGE, 'Schema reviews, staged rows, replays, the audit log, admin tokens and projects.', table)}\n`);
    return 2;
  }
  if (argv.includes('--help')) {
    process.stdout.write(`${helpText(USAGE, 'Schema reviews, staged rows, replays, the audit log, admin tokens and projects.', table)}\n`);
    return 0;
  }
  const { options, positionals } = parseCommand(table, argv);
  const client = new AdminClient(options.server, options.adminToken);
  const [group, action, ...args] = positionals;
  const run = group === 'reviews' ? reviewCommands[action ?? ''] : group === 'audit' ? accessCommands.audit : accessCommands[`${group} ${action ?? ''}`];
  if (!run) throw new SynclineError('invalid_config', `unknown admin subcommand "${positionals.join(' ')}" (run \`syncline admin ${group === 'reviews' ? 'reviews ' : ''}--help\` for the list)`);
  await run(client, options, group === 'audit' && action !== undefined ? [action, ...args] : args);
  return 0;
}

async function quotedVersion(client: AdminClient, options: GovernanceOptions, reviewId: string): Promise<number> {
  if (options.version !== undefined) return options.version;
  const claimed = await client.request('POST', at(Routes.schemaReviewClaim, reviewId), reviewSchema, {}, changeKey(options, ':claim'));
  return claimed.action_version;
}

const REPLAY_POLL_MS = 500;

/**
 * On a terminal, a command that started a replay (approve, resume) or asks about
 * a running one (replay) follows it with a progress line until it ends, then says
 * how it ended. In a pipe or with --json it answers at once: the replay runs on the
 * server either way, and `reviews replay` tells its progress.
 */
async function followReplay(client: AdminClient, options: GovernanceOptions, started: ReplayIntentAnswer): Promise<ReplayIntentAnswer> {
  const line = options.json ? undefined : progressLine();
  if (!line || started.state !== 'pending') return started;
  const lineageId = String(started.lineage_id);
  const startedAt = Date.now();
  const from = Number(started.rows_replayed);
  let replay = started;
  try {
    while (replay.state === 'pending') {
      line.show(`replaying ${lineageId}: ${String(replay.rows_replayed)} of ${String(replay.rows_total)} staged rows, ${perSecond(Number(replay.rows_replayed) - from, startedAt)} rows/s (Ctrl-C stops watching; the replay goes on)`);
      await sleep(REPLAY_POLL_MS);
      replay = (await client.request('GET', at(Routes.lineageReplay, lineageId), replayAnswerSchema)).replay ?? replay;
    }
  } finally {
    line.end();
  }
  return replay;
}

/** What a replay did, in one line; a pending one says where to follow it. */
function replayOutcome(replay: ReplayIntentAnswer): string {
  const lineageId = String(replay.lineage_id);
  const kept = Number(replay.rows_kept) > 0 ? `; ${String(replay.rows_kept)} kept staged (their key fits no mirror key column)` : '';
  if (replay.state === 'done') return `replayed ${String(replay.rows_replayed)} staged rows into the mirror${kept}`;
  if (replay.state === 'pending') return `replaying ${String(replay.rows_total)} staged rows (syncline admin reviews replay ${lineageId})`;
  return `the replay is ${String(replay.state)} after ${String(replay.rows_replayed)} of ${String(replay.rows_total)} rows: ${String(replay.last_error)}${kept} (syncline admin reviews replay ${lineageId})`;
}

const reviewCommands: Record<string, Command> = {
  async list(client, options) {
    const query = new URLSearchParams({ limit: String(options.limit) });
    for (const [key, value] of [['status', options.status], ['lineage_id', options.lineage], ['device_id', options.device], ['after', options.after]] as const) if (value) query.set(key, value);
    const page = await client.request('GET', `${Routes.schemaReviews}?${query}`, reviewListSchema);
    printResult(listJson(page.reviews, page.next), options.json, () =>
      `${formatTable(page.reviews, ['id', 'status', 'classification', 'source_table', 'device_id', 'action_version', 'claimed_by', 'summary'])}${page.next ? `\nnext page: --after ${page.next}` : ''}`,
    );
  },
  async show(client, options, [id]) {
    const review = await client.request('GET', at(Routes.schemaReview, need(id, 'REVIEW_ID')), reviewDetailSchema);
    printResult(review, options.json, () => formatReview(review));
  },
  async claim(client, options, [id]) {
    const review = await client.request('POST', at(Routes.schemaReviewClaim, need(id, 'REVIEW_ID')), reviewSchema, options.force ? { force: true } : {}, changeKey(options));
    printResult({ review }, options.json, () => `review ${String(review.id)} claimed by ${String(review.claimed_by)}; action version ${String(review.action_version)}`);
  },
  async release(client, options, [id]) {
    const reviewId = need(id, 'REVIEW_ID');
    const review = await client.request('POST', at(Routes.schemaReviewRelease, reviewId), reviewSchema, { action_version: await quotedVersion(client, options, reviewId) }, changeKey(options));
    printResult({ review }, options.json, () => `review ${String(review.id)} is queued again`);
  },
  async approve(client, options, [id]) {
    const reviewId = need(id, 'REVIEW_ID');
    const review = await client.request('GET', at(Routes.schemaReview, reviewId), reviewDetailSchema);
    // A rerun with the same Idempotency-Key repeats the first answer; without one, a decided review is said to be decided.
    if (review.status !== 'queued' && review.status !== 'in_review' && options.idempotencyKey === undefined) {
      throw new SynclineError('conflict', `review ${reviewId} is already ${String(review.status)}${review.decided_by ? ` (by ${String(review.decided_by)})` : ''}; there is nothing to approve: run \`syncline admin reviews show ${reviewId}\` for its decision`, { review_id: reviewId });
    }
    const toDecide = review.columns_to_decide;
    const columns = columnActions(options, options.allMirror ? toDecide : []);
    checkSafeTypes(columns, new Map(review.schema.columns.map((c) => [c.name, c.safe_types])));
    if (columns.length === 0) throw new SynclineError('invalid_config', `name an action for every column to decide (${toDecide.join(', ')}), or pass --all-mirror`);
    const body = { action_version: await quotedVersion(client, options, reviewId), columns };
    const result = await client.request('POST', at(Routes.schemaReviewApprove, reviewId), approveAnswerSchema, body, changeKey(options));
    const replay = result.replay && (await followReplay(client, options, result.replay));
    printResult(result, options.json, () =>
      [
        `review ${reviewId} approved; mirror ${result.mirror_table}`,
        result.deferred.length > 0
          ? `deferred ${result.deferred.join(', ')}: the lineage stays paused (new rows are staged, none is lost) until review ${String(result.follow_up_review)} decides only these columns: syncline admin reviews approve ${String(result.follow_up_review)} --mirror ${result.deferred.join(',')}`
          : replay
            ? replayOutcome(replay)
            : 'nothing staged; the lineage is active',
        ...(result.also_approved.length > 0 ? [`also approved (same table and schema, coalesced mirror): ${result.also_approved.join(', ')}`] : []),
      ].join('\n'),
    );
  },
  async reject(client, options, [id]) {
    const reviewId = need(id, 'REVIEW_ID');
    const reason = need(options.reason, '--reason');
    const result = await client.request('POST', at(Routes.schemaReviewReject, reviewId), rejectAnswerSchema, { action_version: await quotedVersion(client, options, reviewId), reason }, changeKey(options));
    printResult(result, options.json, () => `review ${reviewId} rejected; its rows stay staged (syncline admin reviews purge ${String(result.review.lineage_id)})`);
  },
  async staged(client, options, [id]) {
    const query = new URLSearchParams({ limit: String(options.limit) });
    if (options.after) query.set('after', options.after);
    if (options.schema) query.set('schema_hash', options.schema);
    const page = await client.request('GET', `${at(Routes.stagedRows, need(id, 'LINEAGE_ID'))}?${query}`, stagedPageSchema);
    printResult(listJson(page.rows, page.next), options.json, () => `${formatTable(page.rows, ['id', 'seq', 'op', 'pk', 'values', 'reason', 'detail'])}\n${page.next ? `next page: --after ${page.next}` : '(end)'}`);
  },
  async purge(client, options, [id]) {
    const body = options.schema ? { schema_hash: options.schema } : {};
    const result = await client.request('POST', at(Routes.purgeStaged, need(id, 'LINEAGE_ID')), purgeAnswerSchema, body, changeKey(options));
    printResult(result, options.json, () => `${result.purged} staged rows purged\n${formatTable(result.by_schema)}`);
  },
  async resume(client, options, [id]) {
    const result = await client.request('POST', at(Routes.lineageResume, need(id, 'LINEAGE_ID')), resumeAnswerSchema, undefined, changeKey(options));
    const replay = result.replay && (await followReplay(client, options, result.replay));
    printResult(result, options.json, () => (replay ? replayOutcome(replay) : 'nothing staged; the lineage is active'));
  },
  async 'retry-rejected'(client, options, [id]) {
    const result = await client.request('POST', at(Routes.lineageRetryRejected, need(id, 'LINEAGE_ID')), retryRejectedAnswerSchema, {}, changeKey(options));
    const replay = result.replay && (await followReplay(client, options, result.replay));
    printResult(result, options.json, () => (replay ? `${result.rows_rejected} refused rows tried again\n${replayOutcome(replay)}` : 'no refused rows'));
  },
  async replay(client, options, [id]) {
    const answer = await client.request('GET', at(Routes.lineageReplay, need(id, 'LINEAGE_ID')), replayAnswerSchema);
    const replay = answer.replay && (await followReplay(client, options, answer.replay));
    printResult(replay, options.json, () => (replay ? formatRecord(replay) : 'no replay yet'));
  },
};
