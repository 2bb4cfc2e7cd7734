import { readFileSync } from 'fs';
import * as path from 'path';
import * as events from 'aws-cdk-lib/aws-events';
import {
  BATCH_DETAIL_TYPE, buildRecord, checkEnvelope, CURATED_SOURCE, ENVELOPE_SCHEMA_VERSION, RECORD_DETAIL_TYPE,
} from '../runtime/curated-envelope';
import { CURATED_ENVELOPE_SCHEMA } from '../runtime/curated-envelope-schema';
import { resolveEnvelopePaths } from '../runtime/envelope-paths';

/** The ingest lane a curated record came through. */
export enum IngestLane {
  /** Delivered one by one, as soon as it arrived. */
  FAST = 'fast',
  /** Stored through Firehose and S3, then published in batches. */
  SLOW = 'slow',
}

/** Where the envelope's metadata is found in a source event (EventBridge JSON paths). */
export interface CuratedEnvelopePaths {
  /**
   * Path of the tenant id. The slow lane partitions its S3 objects by it.
   * @default '$.detail.tenantId'
   */
  readonly tenantIdPath?: string;
  /**
   * Path of the destination channel.
   * @default '$.detail.channel'
   */
  readonly channelPath?: string;
  /**
   * Path of the correlation id.
   * @default '$.detail.correlationId'
   */
  readonly correlationIdPath?: string;
}

/** Fields of a curated record built with `CuratedEnvelope.record`. */
export interface CuratedRecordOptions {
  /** Unique id of the record, usually the source event id. */
  readonly id: string;
  /** The payload: the original event detail. */
  readonly payload: any;
  /** The lane the record came through. */
  readonly lane: IngestLane;
  /** @default null */
  readonly tenant?: string;
  /** @default null */
  readonly channel?: string;
  /** @default null */
  readonly correlationId?: string;
  /**
   * ISO 8601 time of the source event.
   * @default the current time
   */
  readonly time?: string;
  /**
   * Source of the original event.
   * @default - not set
   */
  readonly source?: string;
  /**
   * Detail-type of the original event.
   * @default - not set
   */
  readonly detailType?: string;
}

/** Outcome of `CuratedEnvelope.validate`. */
export interface EnvelopeValidation {
  /** Whether the value is a valid envelope. */
  readonly valid: boolean;
  /** The first problem found, starting with the JSON pointer of the offending field (empty when valid). */
  readonly errors: string[];
}


/**
 * The versioned envelope of every event on a curated bus.
 *
 * A `CuratedRecord` event carries one record: `schemaVersion`, `kind: "record"`, `id`,
 * `tenant`, `channel`, `correlationId`, `lane`, `time`, `source`, `detailType` and the
 * original `payload`. A `CuratedBatch` event carries `recordCount` records of one tenant
 * read from one S3 object, with the object and line range in `origin`. The JSON Schema
 * ships in the package as `schemas/curated-envelope.v1.schema.json`.
 */
export class CuratedEnvelope {
  /** The envelope schema version this library writes and reads. */
  public static readonly SCHEMA_VERSION = ENVELOPE_SCHEMA_VERSION;
  /** The `source` of every curated event the library publishes. */
  public static readonly SOURCE = CURATED_SOURCE;
  /** The detail-type of an event that carries one record. */
  public static readonly RECORD_DETAIL_TYPE = RECORD_DETAIL_TYPE;
  /** The detail-type of an event that carries a batch of records. */
  public static readonly BATCH_DETAIL_TYPE = BATCH_DETAIL_TYPE;
  /** Path of the JSON Schema file, relative to the package root. */
  public static readonly SCHEMA_FILE = 'schemas/curated-envelope.v1.schema.json';

  /** The JSON Schema (draft 2020-12) of the envelope, as an object. */
  public static jsonSchema(): any {
    return JSON.parse(JSON.stringify(CURATED_ENVELOPE_SCHEMA));
  }

  /**
   * Absolute path of the JSON Schema file in the installed npm package. From Python (and the
   * other jsii languages) this is a path in the jsii runtime's temporary copy of the package,
   * removed when the process ends: use `schemaJson()` there.
   */
  public static schemaFilePath(): string {
    return path.join(__dirname, '..', '..', CuratedEnvelope.SCHEMA_FILE);
  }

  /**
   * The JSON Schema file's content, exactly as shipped: write it wherever producers need it
   * (it outlives the process, unlike `schemaFilePath()` outside TypeScript).
   */
  public static schemaJson(): string {
    return readFileSync(CuratedEnvelope.schemaFilePath(), 'utf8');
  }

  /**
   * Builds a record envelope. Throws if a field is not allowed by the schema.
   *
   * Outside TypeScript, jsii drops `null` values when it hands the object over, so a
   * record without tenant, channel or correlation id loses those keys: use `recordJson`
   * there to get the exact envelope.
   */
  public static record(options: CuratedRecordOptions): any {
    return buildRecord({ ...options, lane: options.lane === IngestLane.FAST ? 'fast' : 'slow' });
  }

  /** Builds a record envelope and returns it as JSON text, exact in every language. */
  public static recordJson(options: CuratedRecordOptions): string {
    return JSON.stringify(CuratedEnvelope.record(options));
  }

  /**
   * Validates an event detail as an envelope (record or batch). A batch's `recordCount`
   * must also equal the number of its records.
   */
  public static validate(detail: any): EnvelopeValidation {
    return checkEnvelope(detail);
  }

  /**
   * Validates an event detail given as JSON text. Use it outside TypeScript, where jsii
   * would drop the `null` fields of an object on its way in.
   */
  public static validateJson(detailJson: string): EnvelopeValidation {
    let detail: unknown;
    try {
      detail = JSON.parse(detailJson);
    } catch (err) {
      return { valid: false, errors: [`/ is not JSON: ${(err as Error).message}`] };
    }
    return checkEnvelope(detail);
  }

  /**
   * A rule target input that turns the matched event into a record envelope, so any
   * target receives the curated shape.
   *
   * The tenant, channel and correlation id are placed inside quotes in the input template,
   * so each arrives as a string whatever its JSON type in the source event: a numeric id
   * `42` becomes `"42"` (EventBridge inserts the number's text), and an id the source event
   * lacks becomes `""` (inside quotes EventBridge renders a missing path as nothing).
   * Unquoted, a numeric id would become a JSON number the envelope schema refuses, and a
   * missing one has no documented rendering. Ids are inserted without escaping, as EventBridge
   * inserts every extracted value: an id holding a double quote or a backslash makes the
   * input invalid JSON (the slow lane then writes it under `firehose-errors/`).
   */
  public static ruleTargetInput(lane: IngestLane, paths: CuratedEnvelopePaths = {}): events.RuleTargetInput {
    return new EnvelopeTargetInput(lane, resolveEnvelopePaths(paths));
  }

  /**
   * The paths with their defaults filled in. Throws if a path is not an EventBridge JSON
   * path in dot notation (`$.detail.tenantId`).
   */
  public static resolvePaths(paths: CuratedEnvelopePaths = {}): CuratedEnvelopePaths {
    return resolveEnvelopePaths(paths);
  }

  private constructor() {}
}

/** The input transformer of `CuratedEnvelope.ruleTargetInput`, written out so the ids can be quoted. */
class EnvelopeTargetInput extends events.RuleTargetInput {
  constructor(private readonly lane: IngestLane, private readonly paths: Required<CuratedEnvelopePaths>) {
    super();
  }

  public bind(_rule: events.IRule): events.RuleTargetInputProperties {
    const lane = this.lane === IngestLane.FAST ? 'fast' : 'slow';
    return {
      inputPathsMap: {
        'id': '$.id',
        'tenant': this.paths.tenantIdPath,
        'channel': this.paths.channelPath,
        'correlationId': this.paths.correlationIdPath,
        'time': '$.time',
        'source': '$.source',
        'detail-type': '$.detail-type',
        'detail': '$.detail',
      },
      // Strings outside quotes get quotes from EventBridge; the ids are quoted here so that
      // numbers and missing ids become strings too. The payload stays unquoted: any JSON.
      inputTemplate: `{"schemaVersion":"${ENVELOPE_SCHEMA_VERSION}","kind":"record","id":<id>,"tenant":"<tenant>",`
        + '"channel":"<channel>","correlationId":"<correlationId>",'
        + `"lane":"${lane}","time":<time>,"source":<source>,"detailType":<detail-type>,"payload":<detail>}`,
    };
  }
}
