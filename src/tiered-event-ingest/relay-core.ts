import type { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { checkRecord, CURATED_SOURCE, RecordEnvelope, RECORD_DETAIL_TYPE } from '../runtime/curated-envelope';
import { putEventsReliably } from '../runtime/put-events';

/** Validates a record envelope and puts it on the curated bus; throws with the reason otherwise. */
export async function relayRecord(client: EventBridgeClient, busName: string, envelope: unknown,
  sleep?: (ms: number) => Promise<void>): Promise<{ id: string; correlationId: string | null; eventId: string }> {
  if (!busName) throw new Error('CURATED_BUS_NAME is not set');
  const check = checkRecord(envelope);
  if (!check.valid) throw new Error(`not a curated record envelope: ${check.errors.join('; ')}`);
  const record = envelope as RecordEnvelope;
  const [outcome] = await putEventsReliably(client, [{
    EventBusName: busName, Source: CURATED_SOURCE, DetailType: RECORD_DETAIL_TYPE, Detail: JSON.stringify(record),
  }], { sleep });
  if (!outcome.ok) throw new Error(`PutEvents failed for record ${record.id}: ${outcome.errorCode}: ${outcome.errorMessage ?? ''}`);
  return { id: record.id, correlationId: record.correlationId, eventId: outcome.eventId ?? '' };
}
