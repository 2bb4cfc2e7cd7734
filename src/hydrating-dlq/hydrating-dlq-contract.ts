/**
 * What the construct and its handlers share, without the handlers' code: the construct imports
 * this file only, so synth (and the Python package) never loads the AWS SDK.
 */

/** The environment of the hydrator and the replayer, set by the construct. */
export const HYDRATOR_ENV = {
  BUCKET_NAME: 'BUCKET_NAME',
  OBJECT_PREFIX: 'OBJECT_PREFIX',
  /** The streams whose failed batches this hydrator reads (comma-separated ARNs): the pipe's and the replay pipe's. */
  STREAM_ARNS: 'STREAM_ARNS',
  /** The replayer's: the replay stream's name, and the bus records may be replayed to. */
  REPLAY_STREAM_NAME: 'REPLAY_STREAM_NAME',
  REPLAY_EVENT_BUS_NAME: 'REPLAY_EVENT_BUS_NAME',
  /** The metrics' `hydratingDlq` dimension: the construct's path. */
  METRICS_ID: 'METRICS_ID',
} as const;
