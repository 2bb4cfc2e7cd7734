/** The JSON paths EventBridge input transformers accept: dot notation from `$`, array indexes. */
export const EVENT_JSON_PATH = /^\$(\.[A-Za-z0-9_\-/]+|\[\d+\])+$/;

/** Where the envelope's ids are found in a source event (the shape of `CuratedEnvelopePaths`). */
export interface EnvelopePathSettings {
  readonly tenantIdPath?: string;
  readonly channelPath?: string;
  readonly correlationIdPath?: string;
}

/**
 * The paths with their defaults filled in. Throws if a path is not an EventBridge JSON path.
 * Shared by the construct (which renders the rules' input transformers) and the handlers
 * that rebuild an envelope from an event the same way, without loading aws-cdk-lib.
 */
export function resolveEnvelopePaths(paths: EnvelopePathSettings): Required<EnvelopePathSettings> {
  const resolved = {
    tenantIdPath: paths.tenantIdPath ?? '$.detail.tenantId',
    channelPath: paths.channelPath ?? '$.detail.channel',
    correlationIdPath: paths.correlationIdPath ?? '$.detail.correlationId',
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!EVENT_JSON_PATH.test(value)) {
      throw new Error(`invalid ${name} ${JSON.stringify(value)}; allowed: a JSON path in dot notation starting with "$.", such as "$.detail.tenantId"`);
    }
  }
  return resolved;
}
