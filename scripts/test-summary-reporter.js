// A node:test reporter that writes one JSON line per finished test (and per file's stderr tail),
// read back by scripts/run-tests.js to print a summary that names every failure on a line of its
// own, and how long each file took. The human-readable stream comes from node's own spec reporter.
import { relative } from 'node:path';

const STDERR_TAIL = 20;

function firstLines(text, count) {
  return String(text ?? '').split('\n').filter((line) => line.trim() !== '').slice(0, count).join(' | ');
}

function describeError(error) {
  if (!error) return '';
  // node wraps the test's own error as `cause` of an ERR_TEST_FAILURE.
  const cause = error.cause instanceof Error ? error.cause : error.cause !== undefined ? { message: String(error.cause) } : error;
  const code = cause.code && cause.code !== 'ERR_TEST_FAILURE' ? ` [${cause.code}]` : '';
  return `${firstLines(cause.message ?? cause, 3)}${code}`;
}

export default async function* summaryReporter(source) {
  const files = new Map();
  const fileOf = (path) => {
    const key = path ? relative(process.cwd(), path) : '(unknown file)';
    let file = files.get(key);
    if (!file) files.set(key, (file = { busy_ms: 0, stderr: [], pending: [] }));
    return [key, file];
  };
  for await (const event of source) {
    const data = event.data ?? {};
    if (event.type === 'test:stderr' || event.type === 'test:stdout') {
      const [, file] = fileOf(data.file);
      if (event.type === 'test:stderr') {
        file.stderr.push(String(data.message).replace(/\n$/, ''));
        if (file.stderr.length > STDERR_TAIL) file.stderr.shift();
      }
      continue;
    }
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const [key, file] = fileOf(data.file);
    const details = data.details ?? {};
    const record = {
      kind: 'test',
      outcome: event.type === 'test:pass' ? (data.skip !== undefined ? 'skip' : data.todo !== undefined ? 'todo' : 'pass') : 'fail',
      file: key,
      path: [data.name],
      depth: data.nesting,
      suite: details.type === 'suite',
      duration_ms: Math.round(details.duration_ms ?? 0),
      failure: details.error?.failureType,
      error: event.type === 'test:fail' ? describeError(details.error) : undefined,
    };
    // Results arrive children first: a suite's own result names the parents of the ones before it.
    for (const pending of file.pending) {
      if (pending.depth > data.nesting) {
        pending.path.unshift(data.name);
        pending.depth = data.nesting;
      }
    }
    file.pending.push(record);
    if (data.nesting === 0) {
      // node 20 reports a file's events only once it has run, so its time is its top-level tests' sum.
      file.busy_ms += record.duration_ms;
      for (const { depth, ...done } of file.pending) yield `${JSON.stringify(done)}\n`;
      file.pending = [];
    }
  }
  for (const [file, { busy_ms, stderr, pending }] of files) {
    for (const { depth, ...done } of pending) yield `${JSON.stringify(done)}\n`;
    yield `${JSON.stringify({ kind: 'file', file, busy_ms, stderr_tail: stderr })}\n`;
  }
}
