import type { ObjectRef, PublisherConfig } from './publisher-core';

/** The publisher's settings, read from the environment the construct sets. */
export function publisherConfigFromEnv(env: NodeJS.ProcessEnv): { bucketName: string; dataPrefix: string; publisher: PublisherConfig } {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`environment variable ${name} is not set`);
    return value;
  };
  const integer = (name: string): number => {
    const value = Number(required(name));
    if (!Number.isInteger(value) || value <= 0) throw new Error(`environment variable ${name} must be a positive integer, got ${env[name]}`);
    return value;
  };
  return {
    bucketName: required('BUCKET_NAME'),
    dataPrefix: env.DATA_PREFIX ?? 'data/',
    publisher: {
      curatedBusName: required('CURATED_BUS_NAME'),
      quarantinePrefix: env.QUARANTINE_PREFIX ?? 'quarantine/',
      maxEntryBytes: integer('MAX_ENTRY_BYTES'),
      maxRecords: integer('MAX_RECORDS_PER_EVENT'),
      leaseSeconds: integer('LEASE_SECONDS'),
      ...(env.RESERVE_MS ? { reserveMs: integer('RESERVE_MS') } : {}),
    },
  };
}

/** A key as S3's classic notifications encode it (`+` for space, `%XX`), decoded; or the key itself if it is not valid encoding. */
export function decodeS3Key(key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' '));
  } catch {
    return key;
  }
}

/**
 * Reads the object reference from an SQS message body holding an EventBridge S3
 * "Object Created" event. The key is kept as given; the prefix check also accepts its
 * URL-decoded form, and the handler falls back to that form if the key is not found.
 * Throws with the reason when the message is not such an event or names another bucket
 * or prefix.
 */
export function objectRefFromNotification(body: string, bucketName: string, dataPrefix: string): ObjectRef {
  let event: any;
  try {
    event = JSON.parse(body);
  } catch (err) {
    throw new Error(`message body is not JSON: ${(err as Error).message}`);
  }
  const bucket = event?.detail?.bucket?.name;
  const key = event?.detail?.object?.key;
  if (event?.source !== 'aws.s3' || typeof bucket !== 'string' || typeof key !== 'string') {
    throw new Error('message is not an EventBridge S3 "Object Created" event (needs source aws.s3, detail.bucket.name, detail.object.key)');
  }
  if (bucket !== bucketName || !(key.startsWith(dataPrefix) || decodeS3Key(key).startsWith(dataPrefix))) {
    throw new Error(`object s3://${bucket}/${key} is outside s3://${bucketName}/${dataPrefix}`);
  }
  const versionId = event.detail.object['version-id'];
  const sequencer = event.detail.object.sequencer;
  return {
    bucket,
    key,
    ...(typeof versionId === 'string' && versionId !== '' && versionId !== 'null' ? { versionId } : {}),
    ...(typeof sequencer === 'string' ? { sequencer } : {}),
  };
}
