import { z } from 'zod';
import { errorAnswerSchema } from '../../protocol/admin-answers.js';
import { API_ROUTES, type Caller, type RouteDoc } from './api-catalogue.js';

type Json = Record<string, unknown>;

const schemaOf = (schema: z.ZodType, io: 'input' | 'output'): Json => {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any', reused: 'inline' }) as Json;
  return rest;
};

const SECURITY: Record<Caller, Json[]> = {
  public: [],
  device: [{ deviceToken: [] }],
  jwt: [{ syncJwt: [] }],
  viewer: [{ adminToken: [] }],
  operator: [{ adminToken: [] }],
  admin: [{ adminToken: [] }],
};

function operation(route: RouteDoc): Json {
  const pathParams = [...route.url.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const queryParams = route.query
    ? Object.entries(route.query.shape).map(([name, schema]) => ({ name, in: 'query', required: false, description: (schema as z.ZodType).description, schema: { type: 'string' } }))
    : [];
  const responses: Json = {};
  for (const [status, answer] of Object.entries(route.responses)) {
    const content = answer.schema ? { 'application/json': { schema: schemaOf(answer.schema, 'output') } } : answer.contentType ? { [answer.contentType]: {} } : undefined;
    responses[status] = { description: answer.description, ...(content ? { content } : {}) };
  }
  responses.default = { description: 'refused or failed: a code of the error catalogue', content: { 'application/json': { schema: schemaOf(errorAnswerSchema, 'output') } } };
  const role = route.caller === 'viewer' || route.caller === 'operator' || route.caller === 'admin' ? ` Needs an admin token with the ${route.caller} role or higher.` : '';
  return {
    summary: route.summary,
    ...(role ? { description: role.trim() } : {}),
    tags: [route.tag],
    operationId: `${route.method.toLowerCase()}${route.url.replace(/[^a-zA-Z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
    security: SECURITY[route.caller],
    ...(pathParams.length + queryParams.length > 0 ? { parameters: [...pathParams, ...queryParams] } : {}),
    ...(route.body ? { requestBody: { required: true, content: { 'application/json': { schema: schemaOf(route.body, 'input') } } } } : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document of the HTTP API, generated from the schemas the server validates with. */
export function openApiDocument(version: string): Json {
  const paths: Record<string, Json> = {};
  for (const route of API_ROUTES) {
    const path = route.url.replace(/:(\w+)/g, '{$1}');
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation(route) };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Syncline HTTP API', version, description: 'Device sync (row batches, controls, two-way sync) and the operator API. Errors answer `{error, message, context}` with a code of the catalogue.' },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    components: {
      securitySchemes: {
        deviceToken: { type: 'http', scheme: 'bearer', description: 'a device token (syncline admin device create)' },
        syncJwt: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'two-way sync: a JWT naming the user or tenant scope' },
        adminToken: { type: 'http', scheme: 'bearer', description: 'the bootstrap admin token or a role token (viewer, operator, admin)' },
      },
    },
    paths,
  };
}
