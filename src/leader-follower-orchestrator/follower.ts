/**
 * Typed helper for followers written in TypeScript or JavaScript. Import it in the follower's
 * own code (bundled with it; it has no dependencies):
 *
 *   import { defineFollower, finishRoute } from 'cdk-event-fabric/lib/leader-follower-orchestrator/follower';
 *
 * Followers in other languages implement the same JSON contract: they receive
 * `{ "channel", "step", "event", "orchestration" }` and return `{ "event": ..., "finish"?: true }`.
 */
import type { FollowerRequest, FollowerResult } from './orchestrator-contract';

export type { FollowerRequest, FollowerResult, StepContext } from './orchestrator-contract';

/** Marks a step's result as the last step of the route (see `finishRoute`). */
export class RouteFinish<E> {
  constructor(public readonly event: E) {}
}

/** Returned by a step, ends the route after this step: the leader puts `event` on the curated bus. */
export function finishRoute<E>(event: E): RouteFinish<E> {
  return new RouteFinish(event);
}

/** A follower's step: returns the processed event, or `finishRoute(event)` to end the route early. */
export type FollowerStep<In, Out> = (request: FollowerRequest<In>) => Out | RouteFinish<Out> | Promise<Out | RouteFinish<Out>>;

/**
 * Wraps a step as a follower handler: checks the request, runs the step and returns the
 * contract's `{ event, finish }`. A step that throws fails the invocation; Lambda retries it,
 * then the leader parks the event with the error at this step (redrive resumes it there).
 * Steps may run more than once (Lambda delivers at least once): make them idempotent.
 */
export function defineFollower<In = unknown, Out = In>(step: FollowerStep<In, Out>): (request: FollowerRequest<In>) => Promise<FollowerResult<Out>> {
  return async (request) => {
    if (!isFollowerRequest(request)) {
      throw new TypeError(`not a follower request: expected { channel, step, event, orchestration } from a LeaderFollowerOrchestrator, got ${
        JSON.stringify(request)?.slice(0, 200)}`);
    }
    const result = await step(request);
    if (result === undefined || (result instanceof RouteFinish && result.event === undefined)) {
      throw new TypeError(`follower step ${request.step} of channel ${JSON.stringify(request.channel)} returned undefined; `
        + 'return the processed event (or finishRoute(event))');
    }
    const output: FollowerResult<Out> = result instanceof RouteFinish ? { event: result.event, finish: true } : { event: result };
    const limit = request.orchestration.maxResultBytes;
    const bytes = Buffer.byteLength(JSON.stringify(output), 'utf8');
    if (typeof limit === 'number' && bytes > limit) {
      // Lambda could not return it to the leader; failing the step parks the event with this reason instead.
      throw new RangeError(`follower step ${request.step} of channel ${JSON.stringify(request.channel)} returned ${bytes} bytes; `
        + `allowed: at most ${limit} (the result and its request must fit Lambda's 1 MB asynchronous payload limit)`);
    }
    return output;
  };
}

function isFollowerRequest(value: unknown): value is FollowerRequest<any> {
  const request = value as Partial<FollowerRequest> | null;
  return typeof request === 'object' && request !== null && typeof request.channel === 'string' && Number.isInteger(request.step)
    && 'event' in request && typeof request.orchestration === 'object' && request.orchestration !== null;
}
