/**
 * Batch prediction: requests shaped like POST /v1/predict bodies, plus the time `at` whose
 * features they are to be scored with, read from NDJSON or CSV as a stream, checked line by
 * line, and scored with the same feature assembly and the same model code as the inference
 * service. The requests are kept, parsed (not the file's text), to be scored in runs.
 */
import { Readable, pipeline } from 'node:stream';
import { parse as parseCsv } from 'csv-parse';
import type { LoadedModel } from '@tributary/inference';
import { parseEventTime, recordValidator, textChunks, textLines, type FeaturePlan, type TextChunks, Type } from '@tributary/shared';
import type { TObject, TSchema } from 'typebox';
import { InputError } from './log-input.js';
import { assembleVectors, type StateSource } from './point-in-time.js';
import type { RejectedRecord } from './training-set.js';

export interface BatchRequest {
  /** `file:line` of the request. */
  where: string;
  request_id: string;
  entities: Record<string, string>;
  features: Record<string, unknown>;
  /** Epoch ms: the features are those as of this time. */
  at: number;
}

export interface BatchScore {
  request_id: string;
  score: number;
  model: string;
  version: string;
  at: number;
}

export interface RequestShape {
  /** Entity types a request may name. */
  entityTypes: string[];
  /** The request-time fields, as the inference service validates them. */
  requestFields: TObject;
  /** What the model needs: the entities every request must name. */
  plan: FeaturePlan;
  model: { name: string; version: string };
  /** `at` of requests without one. */
  defaultAt: number;
  /** Whether a request may carry its own `at` (not when the features are read live). */
  allowAt: boolean;
}

const EntityId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_.:-]+$' });
const At = Type.Union([Type.Integer({ minimum: 0 }), Type.String({ format: 'date-time', maxLength: 64 })]);

function requestValidator(shape: RequestShape) {
  return recordValidator<Omit<BatchRequest, 'where' | 'at'> & { at?: number | string }>(
    Type.Object(
      {
        request_id: Type.String({ minLength: 1, maxLength: 256 }),
        entities: Type.Object(Object.fromEntries(shape.entityTypes.map((e) => [e, Type.Optional(EntityId)])), {
          additionalProperties: false,
        }),
        features: shape.requestFields,
        at: Type.Optional(At),
      },
      { additionalProperties: false },
    ),
  );
}

/** Checks one parsed request; an error message names the offending field. */
function checkRequest(value: unknown, where: string, shape: RequestShape, validate: ReturnType<typeof requestValidator>) {
  const decoded = validate.validate(value);
  if (!decoded.ok) return { error: decoded.detail };
  const request = decoded.value;
  for (const entity of shape.plan.entities)
    if (request.entities[entity] === undefined)
      return { error: `missing required field "entities.${entity}" (model ${shape.model.name} version ${shape.model.version} needs it)` };
  let at = shape.defaultAt;
  if (request.at !== undefined) {
    if (!shape.allowAt)
      return { error: 'at: features read from the live online store are those of now; a request cannot ask for another time' };
    const parsed = parseEventTime(request.at);
    if (parsed === null) return { error: 'at: not a valid time (epoch ms or an RFC 3339 date-time with a zone)' };
    at = parsed;
  }
  return { request: { where, request_id: request.request_id, entities: request.entities, features: request.features, at } };
}

export interface ParsedRequests {
  requests: BatchRequest[];
  rejected: RejectedRecord[];
}

export async function parseNdjsonRequests(text: TextChunks, file: string, shape: RequestShape): Promise<ParsedRequests> {
  const validate = requestValidator(shape);
  const parsed: ParsedRequests = { requests: [], rejected: [] };
  for await (const line of textLines(text)) {
    const where = `${file}:${line.number}`;
    let value: unknown;
    try {
      value = JSON.parse(line.text);
    } catch (error) {
      parsed.rejected.push({ where, detail: `invalid JSON: ${(error as Error).message}` });
      continue;
    }
    const checked = checkRequest(value, where, shape, validate);
    if (checked.request) parsed.requests.push(checked.request);
    else parsed.rejected.push({ where, detail: checked.error });
  }
  return parsed;
}

const isNumeric = (schema: TSchema | undefined) =>
  schema !== undefined && ['number', 'integer'].includes((schema as { type?: string }).type ?? '');

/**
 * CSV with a header line: `request_id`, `at`, one column per entity (`user_id` or
 * `entities.user_id`) and per request field (`amount` or `features.amount`). Cells of
 * numeric request fields are read as numbers; empty cells are absent.
 */
export async function parseCsvRequests(text: TextChunks, file: string, shape: RequestShape): Promise<ParsedRequests> {
  const validate = requestValidator(shape);
  const requests: BatchRequest[] = [];
  // Lines the CSV parser skipped, and records the request schema refused.
  const skipped: RejectedRecord[] = [];
  const refused: RejectedRecord[] = [];
  const fields = shape.requestFields.properties as Record<string, TSchema>;
  const records = parseCsv({
    columns: (header: string[]) => {
      const unknown = header.filter((name) => {
        const bare = name.replace(/^(entities|features)\./, '');
        return !['request_id', 'at'].includes(name) && !shape.entityTypes.includes(bare) && !Object.hasOwn(fields, bare);
      });
      if (unknown.length > 0) throw new Error(`unknown column(s) ${unknown.map((c) => `"${c}"`).join(', ')}`);
      // `amount` and `features.amount` are one column: given twice, which value counts would be a guess.
      const seen = new Set<string>();
      for (const name of header) {
        const bare = name.replace(/^(entities|features)\./, '');
        if (seen.has(bare)) throw new Error(`column "${bare}" is given twice`);
        seen.add(bare);
      }
      return header;
    },
    // A byte-order mark (spreadsheets write one) is not part of the first column's name.
    bom: true,
    skip_empty_lines: true,
    info: true,
    skip_records_with_error: true,
    on_skip: (error) => {
      if (error) skipped.push({ where: `${file}:${error.lines}`, detail: error.message.replace(/ on line \d+$/, '') });
      return undefined;
    },
  });
  pipeline(Readable.from(textChunks(text)), records, () => {});
  try {
    for await (const { record, info } of records as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      const request: { request_id?: string; at?: unknown; entities: Record<string, string>; features: Record<string, unknown> } = {
        entities: {},
        features: {},
      };
      for (const [column, cell] of Object.entries(record)) {
        if (cell === '') continue;
        if (column === 'request_id') request.request_id = cell;
        else if (column === 'at') request.at = /^\d+$/.test(cell) ? Number(cell) : cell;
        else {
          const bare = column.replace(/^(entities|features)\./, '');
          if (!column.startsWith('features.') && shape.entityTypes.includes(bare)) request.entities[bare] = cell;
          else
            request.features[bare] = isNumeric(fields[bare]) && cell.trim() !== '' && Number.isFinite(Number(cell)) ? Number(cell) : cell;
        }
      }
      const where = `${file}:${info.lines}`;
      const checked = checkRequest(request, where, shape, validate);
      if (checked.request) requests.push(checked.request);
      else refused.push({ where, detail: checked.error });
    }
  } catch (error) {
    if (error instanceof InputError) throw error;
    // A file the parser cannot go on with (a bad header): no request is read from it.
    const lines = (error as { lines?: number }).lines;
    return { requests: [], rejected: [...skipped, { where: `${file}:${lines ?? 1}`, detail: (error as Error).message }] };
  }
  const line = (r: RejectedRecord) => Number(r.where.slice(r.where.lastIndexOf(':') + 1));
  return { requests, rejected: [...skipped, ...refused].sort((a, b) => line(a) - line(b)) };
}

/**
 * Scores the requests: vectors assembled as online, from the state source, then the model,
 * `chunkRows` rows a run and `concurrency` runs at once (one per model worker thread).
 */
export async function scoreRequests(
  requests: BatchRequest[],
  options: {
    plan: FeaturePlan;
    states: StateSource;
    model: Pick<LoadedModel, 'manifest' | 'score'>;
    chunkRows?: number;
    concurrency?: number;
  },
): Promise<BatchScore[]> {
  const { plan, model } = options;
  const assembled = await assembleVectors(
    plan,
    options.states,
    requests.map((r) => ({ entities: r.entities, request: r.features, at: r.at })),
  );
  const width = plan.names.length;
  const chunk = options.chunkRows ?? 1024;
  const window = chunk * (options.concurrency ?? 1);
  const scores: number[] = [];
  for (let from = 0; from < requests.length; from += window) {
    const runs: Promise<Float32Array>[] = [];
    for (let start = from; start < Math.min(from + window, requests.length); start += chunk) {
      const rows = Math.min(chunk, requests.length - start);
      const vectors = new Float32Array(rows * width);
      for (let r = 0; r < rows; r++) vectors.set(assembled[start + r]!.vector, r * width);
      runs.push(model.score(vectors, rows));
    }
    for (const result of await Promise.all(runs)) scores.push(...result);
  }
  const { name, version } = model.manifest;
  return requests.map((request, i) => ({ request_id: request.request_id, score: scores[i]!, model: name, version, at: request.at }));
}
