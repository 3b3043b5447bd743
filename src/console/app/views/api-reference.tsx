import { z } from 'zod';
import { Routes } from '../../../protocol/constants.js';
import { call } from '../api.js';
import { useLoad } from '../use-load.js';

const operationSchema = z.object({
  summary: z.string(),
  description: z.string().optional(),
  tags: z.array(z.string()),
  parameters: z.array(z.object({ name: z.string(), in: z.string(), description: z.string().optional() })).optional(),
  requestBody: z.object({ content: z.record(z.string(), z.object({ schema: z.unknown() })) }).optional(),
  responses: z.record(z.string(), z.object({ description: z.string(), content: z.record(z.string(), z.object({ schema: z.unknown().optional() })).optional() })),
});
const documentSchema = z.object({ info: z.object({ title: z.string(), version: z.string() }), paths: z.record(z.string(), z.record(z.string(), operationSchema)) });

/** The API reference, rendered from /openapi.json (the same document any client generator reads). */
export function ApiReference() {
  const { data, error } = useLoad(() => call(documentSchema, Routes.openapi), []);
  if (error) return <p role="alert" class="error">{error}</p>;
  if (!data) return <p aria-busy="true">Loading…</p>;
  const operations = Object.entries(data.paths).flatMap(([url, methods]) => Object.entries(methods).map(([method, op]) => ({ url, method, op })));
  const tags = [...new Set(operations.map((o) => o.op.tags[0] ?? 'other'))];
  return (
    <>
      <h1>{data.info.title} <small>{data.info.version}</small></h1>
      <p>From <a href={Routes.openapi}>{Routes.openapi}</a> (OpenAPI 3.1).</p>
      {tags.map((tag) => (
        <section aria-label={tag}>
          <h2>{tag}</h2>
          {operations.filter((o) => (o.op.tags[0] ?? 'other') === tag).map(({ url, method, op }) => (
            <details class="operation">
              <summary><span class={`method ${method}`}>{method.toUpperCase()}</span> <code>{url}</code> — {op.summary}</summary>
              {op.description && <p>{op.description}</p>}
              {op.parameters && <p>Parameters: {op.parameters.map((p) => `${p.name} (${p.in})${p.description ? `: ${p.description}` : ''}`).join('; ')}</p>}
              {op.requestBody && (<><h3>Request body</h3><pre>{JSON.stringify(op.requestBody.content['application/json']?.schema, null, 2)}</pre></>)}
              <h3>Answers</h3>
              {Object.entries(op.responses).map(([status, answer]) => (
                <>
                  <p><b>{status}</b> {answer.description}</p>
                  {answer.content?.['application/json']?.schema !== undefined && status !== 'default' && <pre>{JSON.stringify(answer.content['application/json'].schema, null, 2)}</pre>}
                </>
              ))}
            </details>
          ))}
        </section>
      ))}
    </>
  );
}
