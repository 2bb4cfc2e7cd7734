import { _Record as KinesisRecord, GetRecordsCommandInput, GetRecordsCommandOutput, GetShardIteratorCommandInput, KinesisClient } from '@aws-sdk/client-kinesis';
import { mockClient } from 'aws-sdk-client-mock';

/**
 * One Kinesis shard for the reader's fault tests, answering GetShardIterator and GetRecords as
 * the Kinesis API reference describes them, with the faults moto cannot make: pages shorter
 * than asked or empty while records follow, expired iterators, throttling, a trim horizon, a
 * closed shard (no NextShardIterator on its last page), a shard that no longer exists.
 * Sequence numbers are Kinesis-sized (56 digits), increasing with gaps as real ones do.
 */
export interface FakeShardOptions {
  /** Records in the shard. */
  readonly count: number;
  /** Records before this index are trimmed: AT_SEQUENCE_NUMBER at one of them is an InvalidArgumentException. */
  readonly trimmedBefore?: number;
  /** The shard is closed (split or merged): its last page has no NextShardIterator. */
  readonly closed?: boolean;
  /** The shard no longer exists: every call is a ResourceNotFoundException. */
  readonly gone?: boolean;
  /** Pages hold at most this many records, whatever the Limit. */
  readonly maxPage?: number;
  /** GetRecords calls (1-based) answered with an empty page though records follow. */
  readonly emptyPagesAt?: readonly number[];
  /** GetRecords calls (1-based) that fail with ExpiredIteratorException. */
  readonly expireAt?: readonly number[];
  /** Calls of either kind (1-based, counted together) that fail with ProvisionedThroughputExceededException. */
  readonly throttleAt?: readonly number[];
}

const BASE = 49657421092336431384529591016419587374429116335263940610n;

export function fakeSequenceNumber(index: number): string {
  return (BASE + BigInt(index) * 1_208_925_819_614_629_174_706_176n).toString();
}

export class FakeShard {
  public readonly records: KinesisRecord[];
  public readonly iteratorRequests: GetShardIteratorCommandInput[] = [];
  public readonly getRecordsRequests: GetRecordsCommandInput[] = [];
  private calls = 0;
  private readonly iterators = new Map<string, number>();

  constructor(private readonly options: FakeShardOptions, makeData: (i: number) => Uint8Array = (i) => Buffer.from(`record ${i}`)) {
    this.records = Array.from({ length: options.count }, (_, i) => ({
      SequenceNumber: fakeSequenceNumber(i),
      PartitionKey: `key-${i % 3}`,
      Data: makeData(i),
      ApproximateArrivalTimestamp: new Date(Date.UTC(2026, 10, 30, 15, 3, 46) + i * 10),
    }));
  }

  /** A mocked KinesisClient backed by this shard. */
  public client(): KinesisClient {
    const client = new KinesisClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    const mock = mockClient(client);
    mock.onAnyCommand().callsFake((input: GetShardIteratorCommandInput & GetRecordsCommandInput) => (
      'ShardIteratorType' in input ? this.getShardIterator(input) : this.getRecords(input)));
    return client;
  }

  private fail(name: string): never {
    const error = new Error(`${name} (fake shard)`);
    error.name = name;
    throw error;
  }

  private tick(): void {
    this.calls++;
    if (this.options.gone) this.fail('ResourceNotFoundException');
    if (this.options.throttleAt?.includes(this.calls)) this.fail('ProvisionedThroughputExceededException');
  }

  private getShardIterator(input: GetShardIteratorCommandInput): { ShardIterator: string } {
    this.iteratorRequests.push(input);
    this.tick();
    const trimmed = this.options.trimmedBefore ?? 0;
    const indexOf = (sequence: string) => this.records.findIndex((r) => r.SequenceNumber === sequence);
    let position: number;
    switch (input.ShardIteratorType) {
      case 'TRIM_HORIZON': position = trimmed; break;
      case 'AT_SEQUENCE_NUMBER':
      case 'AFTER_SEQUENCE_NUMBER': {
        const at = indexOf(input.StartingSequenceNumber!);
        if (at < 0 || at < trimmed) this.fail('InvalidArgumentException');
        position = input.ShardIteratorType === 'AT_SEQUENCE_NUMBER' ? at : at + 1;
        break;
      }
      default: throw new Error(`fake shard: ${input.ShardIteratorType} is not modelled`);
    }
    const iterator = `iterator-${this.iterators.size}`;
    this.iterators.set(iterator, position);
    return { ShardIterator: iterator };
  }

  private getRecords(input: GetRecordsCommandInput): Partial<GetRecordsCommandOutput> {
    this.getRecordsRequests.push(input);
    this.tick();
    const getRecordsCall = this.getRecordsRequests.length;
    if (this.options.expireAt?.includes(getRecordsCall)) this.fail('ExpiredIteratorException');
    const position = this.iterators.get(input.ShardIterator!);
    if (position === undefined) this.fail('InvalidArgumentException');
    const empty = this.options.emptyPagesAt?.includes(getRecordsCall);
    const size = empty ? 0 : Math.min(input.Limit ?? 10_000, this.options.maxPage ?? 10_000);
    const page = this.records.slice(position, position + size);
    const next = position + page.length;
    const atEnd = next >= this.records.length;
    const nextIterator = `iterator-${this.iterators.size}`;
    this.iterators.set(nextIterator, next);
    return {
      Records: page,
      NextShardIterator: atEnd && this.options.closed ? undefined : nextIterator,
      MillisBehindLatest: atEnd ? 0 : 1000,
      ChildShards: atEnd && this.options.closed ? [{ ShardId: 'shardId-000000000002', ParentShards: ['shardId-000000000000'], HashKeyRange: { StartingHashKey: '0', EndingHashKey: '1' } }] : undefined,
    };
  }
}
