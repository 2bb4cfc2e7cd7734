import { DEFAULT_STEP_EVENT_BYTES, FOLLOWER_NAME_PATTERN, MAX_ROUTE_LENGTH, MAX_STEP_EVENT_BYTES } from './orchestrator-contract';

/**
 * JSON Schemas (draft 2020-12) of what a LeaderFollowerOrchestrator follower receives and
 * returns, version 1: for followers in any language. The source of truth:
 * `schemas/follower-request.v1.schema.json` and `schemas/follower-result.v1.schema.json` in
 * the package are written from these objects (`npx projen schemas`), and a test keeps them
 * identical. The leader checks results with the result schema.
 */
export const FOLLOWER_REQUEST_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://cdk-event-fabric.dev/schemas/follower-request.v1.schema.json',
  title: 'cdk-event-fabric LeaderFollowerOrchestrator follower request',
  description: 'What the leader invokes a follower with (asynchronously). Limit: the whole request, as JSON, is at most the '
    + `orchestrator's maxEventBytes (default ${DEFAULT_STEP_EVENT_BYTES}, at most ${MAX_STEP_EVENT_BYTES}); a larger one is parked as `
    + '"oversized" before the follower is invoked.',
  type: 'object',
  required: ['channel', 'step', 'event', 'orchestration'],
  properties: {
    channel: { type: 'string', minLength: 1, maxLength: 256, description: 'The channel whose route is running.' },
    step: { type: 'integer', minimum: 1, maximum: MAX_ROUTE_LENGTH, description: 'This follower\'s 1-based position in the route.' },
    event: { description: 'The event as the previous step returned it (the record\'s payload at step 1): any JSON.' },
    parameters: {
      description: 'This step\'s parameters from the route ({ "follower": name, "parameters": ... }): any JSON. Absent when the route '
        + 'names the follower alone.',
    },
    orchestration: {
      type: 'object',
      description: 'The run\'s state, kept by the leader; followers may read it and need not return it.',
      required: ['orchestrator', 'runId', 'route', 'follower', 'hops', 'startedAt', 'record', 'dispatchId', 'maxResultBytes'],
      properties: {
        orchestrator: { type: 'string', description: 'Id of the orchestrator (its construct address).' },
        runId: { type: 'string', description: 'Deterministic id of the run; with step, the idempotency key of a step.' },
        route: {
          type: 'array',
          minItems: 1,
          maxItems: MAX_ROUTE_LENGTH,
          items: { type: 'string', pattern: FOLLOWER_NAME_PATTERN },
          description: 'The route\'s follower names as read when the run started.',
        },
        routeParameters: {
          type: 'array',
          minItems: 1,
          maxItems: MAX_ROUTE_LENGTH,
          description: 'Each step\'s parameters in route order (null for a step without), when any step of the route has them.',
        },
        follower: { type: 'string', pattern: FOLLOWER_NAME_PATTERN, description: 'The follower this request is for.' },
        hops: { type: 'integer', minimum: 1, description: 'Follower invocations of this record so far, this one included.' },
        startedAt: { type: 'integer', description: 'Epoch milliseconds when the run started.' },
        record: { type: 'object', description: 'The curated record without its payload (see curated-envelope.v1.schema.json).' },
        dispatchId: { type: 'string', minLength: 1, description: 'Id of this dispatch of the step: a retry or a redrive is a new dispatch.' },
        followerArn: { type: 'string', description: 'The function ARN the leader invoked for this step.' },
        maxResultBytes: {
          type: 'integer',
          minimum: 0,
          description: 'The largest result (its JSON, in UTF-8 bytes) that can return to the leader: Lambda\'s destination record '
            + 'carries this request and the result within its 1 MB asynchronous payload limit. A follower whose result would be '
            + 'larger must fail instead (raise an error), so the step is parked as "follower-failed" with the reason; a larger '
            + 'result cannot return, and the step is only found and parked as "stalled" once its result can no longer come '
            + '(followerMaxEventAge + 30 minutes).',
        },
      },
    },
  },
} as const;

export const FOLLOWER_RESULT_SCHEMA = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://cdk-event-fabric.dev/schemas/follower-result.v1.schema.json',
  title: 'cdk-event-fabric LeaderFollowerOrchestrator follower result',
  description: 'What a follower returns. Limit: its JSON is at most the request\'s orchestration.maxResultBytes (UTF-8 bytes). '
    + 'Anything else is parked as "invalid-follower-result".',
  type: 'object',
  required: ['event'],
  properties: {
    event: { description: 'The processed event, passed to the next step (or put on the curated bus at FINISH): any JSON, null included.' },
    finish: { type: 'boolean', description: 'true ends the route after this step: the leader puts the event on the curated bus.' },
  },
} as const;
