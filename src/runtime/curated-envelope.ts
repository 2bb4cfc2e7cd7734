import { createHash } from 'crypto';
import Ajv2020 from 'ajv/dist/2020';
import type { ValidateFunction } from 'ajv/dist/2020';
import { CURATED_ENVELOPE_SCHEMA } from './curated-envelope-schema';

/** Version written in, and required of, every envelope. */
export const ENVELOPE_SCHEMA_VERSION = '1.0';
/** The `source` of every event the library puts on a curated bus. */
export const CURATED_SOURCE = 'cdk-event-fabric';
/** The detail-type of a single-record event. */
export const RECORD_DETAIL_TYPE = 'CuratedRecord';
/** The detail-type of a batched event. */
export const BATCH_DETAIL_TYPE = 'CuratedBatch';

export type Lane = 'fast' | 'slow';

/** The detail of a `CuratedRecord` event. */
export interface RecordEnvelope {
  readonly schemaVersion: typeof ENVELOPE_SCHEMA_VERSION;
  readonly kind: 'record';
  readonly id: string;
  readonly tenant: string | null;
  readonly channel: string | null;
  readonly correlationId: string | null;
  readonly lane: Lane;
  readonly time: string;
  readonly source?: string;
  readonly detailType?: string;
  readonly payload: unknown;
  /** Set by a LeaderFollowerOrchestrator on the record it puts on the curated bus at FINISH. */
  readonly orchestration?: OrchestrationSummary;
}

/** How a record was orchestrated: the followers that processed it, in order. */
export interface OrchestrationSummary {
  readonly orchestrator: string;
  readonly runId: string;
  readonly route: string[];
  readonly hops: number;
  readonly startedAt: string;
  readonly completedAt: string;
}

/** The detail of a `CuratedBatch` event. */
export interface BatchEnvelope {
  readonly schemaVersion: typeof ENVELOPE_SCHEMA_VERSION;
  readonly kind: 'batch';
  readonly id: string;
  readonly tenant: string | null;
  readonly lane: 'slow';
  readonly time: string;
  readonly recordCount: number;
  readonly origin: { bucket: string; key: string; versionId?: string; firstLine: number; lastLine: number };
  readonly records: RecordEnvelope[];
}

export type Envelope = RecordEnvelope | BatchEnvelope;

/** Result of a validation: `errors` says what is wrong (the first problem found). */
export interface EnvelopeCheck {
  readonly valid: boolean;
  readonly errors: string[];
}

// Compiled once per process (a handler's cold start), never at import time.
let validators: { record: ValidateFunction; batch: ValidateFunction } | undefined;
function compiled() {
  if (!validators) {
    const ajv = new Ajv2020({ strict: true });
    ajv.addSchema(CURATED_ENVELOPE_SCHEMA as object, 'envelope');
    validators = {
      record: ajv.getSchema('envelope#/$defs/record')!,
      batch: ajv.getSchema('envelope#/$defs/batch')!,
    };
  }
  return validators;
}

/**
 * Validates a value as an envelope: a record, or a batch whose `recordCount` equals the
 * length of `records`. The `kind` field picks the branch, so the errors are about it.
 */
export function checkEnvelope(value: unknown): EnvelopeCheck {
  const kind = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as { kind?: unknown }).kind : undefined;
  if (kind === 'record') return checkRecord(value);
  if (kind !== 'batch') {
    return { valid: false, errors: [`/kind must be "record" or "batch" (got ${kind === undefined ? 'no kind' : JSON.stringify(kind)})`] };
  }
  const validate = compiled().batch;
  if (!validate(value)) return { valid: false, errors: describeErrors(validate) };
  const batch = value as BatchEnvelope;
  if (batch.recordCount !== batch.records.length) {
    return { valid: false, errors: [`/recordCount is ${batch.recordCount} but records holds ${batch.records.length}`] };
  }
  return { valid: true, errors: [] };
}

/** Validates a value as a record envelope. */
export function checkRecord(value: unknown): EnvelopeCheck {
  const validate = compiled().record;
  return validate(value) ? { valid: true, errors: [] } : { valid: false, errors: describeErrors(validate) };
}

function describeErrors(validate: ValidateFunction): string[] {
  return (validate.errors ?? []).map((e) => {
    const params = e.params as { additionalProperty?: string; allowedValue?: unknown; allowedValues?: unknown };
    const detail = params.additionalProperty ?? params.allowedValue ?? params.allowedValues;
    return `${e.instancePath || '/'} ${e.message ?? 'is invalid'}${detail === undefined ? '' : ` (${JSON.stringify(detail)})`}`;
  });
}

/** Fields of a record envelope; the constant fields are filled in. */
export interface RecordFields {
  readonly id: string;
  readonly tenant?: string | null;
  readonly channel?: string | null;
  readonly correlationId?: string | null;
  readonly lane: Lane;
  readonly time?: string;
  readonly source?: string;
  readonly detailType?: string;
  readonly payload: unknown;
}

/** Builds a record envelope, throwing if the result is not valid. */
export function buildRecord(fields: RecordFields): RecordEnvelope {
  const envelope: RecordEnvelope = {
    schemaVersion: ENVELOPE_SCHEMA_VERSION,
    kind: 'record',
    id: fields.id,
    tenant: fields.tenant ?? null,
    channel: fields.channel ?? null,
    correlationId: fields.correlationId ?? null,
    lane: fields.lane,
    time: fields.time ?? new Date().toISOString(),
    ...(fields.source !== undefined ? { source: fields.source } : {}),
    ...(fields.detailType !== undefined ? { detailType: fields.detailType } : {}),
    payload: fields.payload,
  };
  const check = checkRecord(envelope);
  if (!check.valid) throw new Error(`invalid curated record: ${check.errors.join('; ')}`);
  return envelope;
}

const SEPARATOR = Buffer.from([0]);

/** A UUID-shaped id derived from its inputs, so re-publishing the same lines gives the same id. */
export function deterministicId(...parts: (string | Uint8Array)[]): string {
  // The parts joined by U+0000, hashed part by part (a part may be bytes, as UTF-8 text).
  const hash = createHash('sha256');
  parts.forEach((part, i) => {
    if (i > 0) hash.update(SEPARATOR);
    hash.update(part);
  });
  const hex = hash.digest('hex');
  // RFC 4122 layout: version nibble 5, variant nibble 8–b.
  const variant = '89ab'[parseInt(hex[16], 16) % 4];
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
