/**
 * JSON Schema (draft 2020-12) of the curated envelope, version 1.0. The source of truth:
 * `schemas/curated-envelope.v1.schema.json` in the package is written from this object
 * (`npx projen schemas`) and a test keeps the two identical.
 */
export const CURATED_ENVELOPE_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://cdk-event-fabric.dev/schemas/curated-envelope.v1.schema.json',
  title: 'cdk-event-fabric curated envelope',
  description: 'The detail of every event on a curated bus: one record (detail-type CuratedRecord) or a batch of records (detail-type CuratedBatch).',
  oneOf: [{ $ref: '#/$defs/record' }, { $ref: '#/$defs/batch' }],
  $defs: {
    nullableString: { type: ['string', 'null'], maxLength: 1024 },
    record: {
      type: 'object',
      description: 'One event, with its metadata and the original payload.',
      required: ['schemaVersion', 'kind', 'id', 'tenant', 'channel', 'correlationId', 'lane', 'time', 'payload'],
      additionalProperties: false,
      properties: {
        schemaVersion: { const: '1.0', description: 'Envelope schema version. A breaking change bumps the major version.' },
        kind: { const: 'record' },
        id: { type: 'string', minLength: 1, maxLength: 256, description: 'Unique id: the id of the event the record was made from.' },
        tenant: { $ref: '#/$defs/nullableString', description: 'Tenant id as a string (a numeric id is carried as its text); empty (from a rule\'s input transformer) or null when the source event had none.' },
        channel: { $ref: '#/$defs/nullableString', description: 'Destination channel as a string (a numeric id is carried as its text); empty (from a rule\'s input transformer) or null when the source event had none.' },
        correlationId: { $ref: '#/$defs/nullableString', description: 'Correlation id as a string (a numeric id is carried as its text); empty (from a rule\'s input transformer) or null when the source event had none.' },
        lane: { enum: ['fast', 'slow'], description: 'The ingest lane the record came through.' },
        time: { type: 'string', minLength: 1, maxLength: 64, description: 'ISO 8601 time of the source event.' },
        source: { type: 'string', maxLength: 256, description: 'Source of the original event.' },
        detailType: { type: 'string', maxLength: 256, description: 'Detail-type of the original event.' },
        payload: { description: 'The original event detail, unchanged (or, with orchestration, as the last follower returned it).' },
        orchestration: {
          type: 'object',
          description: 'Set on a record a LeaderFollowerOrchestrator put on the curated bus at FINISH: the followers that processed the payload, in order.',
          required: ['orchestrator', 'runId', 'route', 'hops', 'startedAt', 'completedAt'],
          additionalProperties: false,
          properties: {
            orchestrator: { type: 'string', maxLength: 256 },
            runId: { type: 'string', maxLength: 256 },
            route: { type: 'array', maxItems: 64, items: { type: 'string', maxLength: 64 } },
            hops: { type: 'integer', minimum: 0, description: 'Follower invocations of the record so far; a record that re-enters an orchestrator keeps counting.' },
            startedAt: { type: 'string', maxLength: 64 },
            completedAt: { type: 'string', maxLength: 64 },
          },
        },
      },
    },
    batch: {
      type: 'object',
      description: 'Records of one tenant published together from one object of the slow lane.',
      required: ['schemaVersion', 'kind', 'id', 'tenant', 'lane', 'time', 'recordCount', 'origin', 'records'],
      additionalProperties: false,
      properties: {
        schemaVersion: { const: '1.0' },
        kind: { const: 'batch' },
        id: { type: 'string', minLength: 1, maxLength: 256, description: 'Deterministic id: the same object lines always give the same batch id.' },
        tenant: { $ref: '#/$defs/nullableString', description: 'The tenant every record of the batch shares.' },
        lane: { const: 'slow' },
        time: { type: 'string', minLength: 1, maxLength: 64, description: 'ISO 8601 time the batch was published.' },
        recordCount: { type: 'integer', minimum: 1, description: 'How many records the batch carries (the length of records).' },
        origin: {
          type: 'object',
          description: 'Where the records were read from.',
          required: ['bucket', 'key', 'firstLine', 'lastLine'],
          additionalProperties: false,
          properties: {
            bucket: { type: 'string' },
            key: { type: 'string' },
            versionId: { type: 'string' },
            firstLine: { type: 'integer', minimum: 1, description: '1-based line number of the first record.' },
            lastLine: { type: 'integer', minimum: 1, description: '1-based line number of the last record.' },
          },
        },
        records: { type: 'array', minItems: 1, items: { $ref: '#/$defs/record' } },
      },
    },
  },
} as const;
