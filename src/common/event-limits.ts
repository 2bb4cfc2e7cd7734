// Kept free of SDK imports: construct code (synth time) imports it, and the SDK is only a
// dev dependency (the handlers get it from the Lambda runtime).

/**
 * An entry size that still delivers: 4 KiB under the 1 MiB PutEvents limit, for the fields
 * EventBridge wraps around the entry (id, account, time, region, resources), so the event a
 * target receives fits a 1 MiB SQS message or Lambda payload. Anything over 960 KiB bills the
 * same 16 chunks of 64 KB, so the headroom costs nothing.
 */
export const DELIVERABLE_ENTRY_BYTES = 1_044_480;
