/**
 * Timeouts of the handlers' AWS clients. Without them a request whose answer never comes
 * waits until the function times out, wherever it is, even between a claim and its
 * finish; with them it fails in seconds as a lost answer, which every handler's retry
 * path already covers. `throwOnRequestTimeout` makes the SDK throw a `TimeoutError` rather
 * than only log a warning.
 */
export const HANDLER_CLIENT_TIMEOUTS = {
  /** Milliseconds to open a connection. */
  connectionTimeout: 3_000,
  /** Milliseconds for one request and its answer; the SDK's own retries come on top. */
  requestTimeout: 5_000,
  throwOnRequestTimeout: true,
} as const;

/** Client options giving a client the handlers' timeouts: `new DynamoDBClient(withHandlerTimeouts())`. */
export function withHandlerTimeouts(): { requestHandler: typeof HANDLER_CLIENT_TIMEOUTS } {
  return { requestHandler: HANDLER_CLIENT_TIMEOUTS };
}
