/**
 * The in-memory log with partitions that end in a transaction marker, as a transactional producer's
 * commit leaves one on Kafka: an offset that holds no record. The in-memory log has no transactions;
 * this one counts the markers in the partitions' end offsets and delivers the fetch that reaches a
 * marker as Kafka's log does: with no record and `lastOffset` at the marker, only to the subscribers
 * that ask for such fetches (`emptyBatches`), called and not awaited.
 */
import { MemoryEventLog, type PartitionOffsets, type RecordBatch, type SubscribeOptions, type Subscription } from '@tributary/shared';

export class TransactionMarkerLog extends MemoryEventLog {
  private readonly subscribers: SubscribeOptions[] = [];
  private readonly markers = new Map<string, number>();
  /** How many times the end offsets were read (a consumer-lag refresh reads them once per topic). */
  endOffsetReads = 0;

  override async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.subscribers.push(options);
    return super.subscribe(options);
  }

  override async endOffsets(topic: string): Promise<PartitionOffsets[]> {
    this.endOffsetReads++;
    return (await super.endOffsets(topic)).map((p) => ({
      ...p,
      end: String(Number(p.end) + (this.markers.get(`${topic}:${p.partition}`) ?? 0)),
    }));
  }

  /** Ends the partition with a marker (after its records: none may be published to it after this), and fetches it. */
  async endWithMarker(topic: string, partition: number): Promise<void> {
    const marker = (await this.endOffsets(topic))[partition]!.end;
    this.markers.set(`${topic}:${partition}`, (this.markers.get(`${topic}:${partition}`) ?? 0) + 1);
    const batch: RecordBatch = { topic, partition, records: [], lastOffset: marker, highWatermark: String(BigInt(marker) + 1n) };
    for (const subscriber of this.subscribers) {
      if (!subscriber.emptyBatches || !subscriber.topics.includes(topic)) continue;
      subscriber.eachBatch(batch).catch((error: unknown) => subscriber.onError?.(error));
    }
  }
}
