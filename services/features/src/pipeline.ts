/**
 * The feature pipeline runner: consumes each source topic as a consumer group, applies
 * batches to the in-process keyed state, flushes changed entities to the online store at
 * a bounded interval and commits, after each flush, the offsets (and watermarks) it made
 * durable. Records that cannot be applied go to the dead-letter topic, with the reason,
 * before their offsets can be committed: while that fails, the partition's commits wait
 * for them (a replay from its commit makes them again). Only this layer knows the event
 * log. When tracing is on, each batch is a `feature_batch` span, and a flush a
 * `feature_flush` span (the child of the batch that started it). A stop gives up the batches
 * not yet applied and waits for the last flush `stopFlushMs` at most: what it does not commit
 * is consumed again by the next owner of its partition.
 */
import {
  activeContext,
  Counter,
  deadLetter,
  deadLetterCounter,
  Gauge,
  hasSpan,
  Histogram,
  inSpan,
  metric,
  nowMs,
  publishDeadLetters,
  recordSpan,
  SpanKind,
  TimedOut,
  within,
  type CompiledFeatureGroup,
  type EventLog,
  type EventSource,
  type Logger,
  type OnlineStore,
  type OutgoingRecord,
  type RecordBatch,
  type Registry,
  type Span,
  type Subscription,
} from '@tributary/shared';
import type { TSchema } from 'typebox';
import {
  createFeatureProcessor,
  decodeCheckpoint,
  DEFAULT_CACHE_BYTES,
  PartitionLost,
  type FeatureProcessor,
} from './feature-processor.js';
import { consumerLag } from './consumer-lag.js';
import { startTogether } from './start-together.js';
import { Stopping, stopSignal } from './stopping.js';

export interface FeaturePipelineOptions {
  eventLog: EventLog;
  store: OnlineStore;
  sources: (EventSource & { schema: TSchema })[];
  groups: CompiledFeatureGroup[];
  deadLetterTopic: string;
  allowedLatenessMs: number;
  /** Consumer-group prefix: each source is consumed by the group `<groupId>-<source name>`. */
  groupId: string;
  registry: Registry;
  logger: Logger;
  /** Longest time an applied event waits in memory before it is written (freshness). */
  flushIntervalMs?: number;
  /**
   * While the consumer is behind (a backlog of more than `backlogRecords` in a partition),
   * the interval grows to this: each entity is then written once for many of its events.
   */
  backlogFlushIntervalMs?: number;
  backlogRecords?: number;
  /**
   * Heap for the entity states kept in memory, all sources together (each source's processor
   * gets an equal share); see `FeatureProcessorOptions.cacheBytes`. Default: a quarter of V8's heap limit.
   */
  cacheBytes?: number;
  /**
   * Longest a stop waits for its last flush (default 5 s): with the store down it would wait for
   * the client's retries. What it leaves unwritten or uncommitted is consumed again.
   */
  stopFlushMs?: number;
  /** How often the consumer lag of the partitions held is counted again from their end offsets (default 15 s). */
  lagRefreshMs?: number;
}

export interface FeaturePipeline {
  /** Writes what is pending now (tests, shutdown). */
  flush(): Promise<void>;
  stop(): Promise<void>;
}

/** Handles each batch in a `feature_batch` span (active meanwhile: a flush it starts is its child). */
function traceBatch(handle: (batch: RecordBatch, span: Span | undefined) => Promise<void>) {
  const options = { kind: SpanKind.CONSUMER };
  return (batch: RecordBatch) => inSpan('feature_batch', (span) => handle(batch, span), options);
}

/** Partitions whose batches are loaded at once (their entities' stored state is read meanwhile). */
const CONCURRENT_PARTITIONS = 4;

const FRESHNESS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 1, 2.5, 5, 10, 30, 60];

function pipelineMetrics(registry: Registry) {
  const registers = [registry];
  return {
    events: metric(
      registry,
      'tributary_pipeline_events_total',
      () =>
        new Counter({
          name: 'tributary_pipeline_events_total',
          help: 'Source events by outcome',
          labelNames: ['topic', 'outcome'],
          registers,
        }),
    ),
    deadLettered: deadLetterCounter(registry),
    flushSeconds: metric(
      registry,
      'tributary_pipeline_flush_duration_seconds',
      () =>
        new Histogram({ name: 'tributary_pipeline_flush_duration_seconds', help: 'Time to write changed entities and commit', registers }),
    ),
    unreadableStates: metric(
      registry,
      'tributary_pipeline_unreadable_states_total',
      () =>
        new Counter({
          name: 'tributary_pipeline_unreadable_states_total',
          help: 'Stored entity states the pipeline could not read (damaged): each started over from no events',
          labelNames: ['topic'],
          registers,
        }),
    ),
    entitiesWritten: metric(
      registry,
      'tributary_pipeline_entities_written_total',
      () =>
        new Counter({
          name: 'tributary_pipeline_entities_written_total',
          help: 'Entity states written to the online store',
          labelNames: ['outcome'],
          registers,
        }),
    ),
    freshness: metric(
      registry,
      'tributary_feature_freshness_seconds',
      () =>
        new Histogram({
          name: 'tributary_feature_freshness_seconds',
          help: 'Lag from an event time to the moment its features are readable in the online store',
          labelNames: ['topic'],
          buckets: FRESHNESS_BUCKETS,
          registers,
        }),
    ),
    cachedEntities: metric(
      registry,
      'tributary_pipeline_cached_entities',
      () =>
        new Gauge({
          name: 'tributary_pipeline_cached_entities',
          help: 'Entity states kept in memory between their events',
          labelNames: ['topic'],
          registers,
        }),
    ),
    cacheBytes: metric(
      registry,
      'tributary_pipeline_cache_bytes',
      () =>
        new Gauge({
          name: 'tributary_pipeline_cache_bytes',
          help: 'Estimated heap of the entity states kept in memory (bounded by FEATURE_CACHE_MB)',
          labelNames: ['topic'],
          registers,
        }),
    ),
    cacheEvictions: metric(
      registry,
      'tributary_pipeline_cache_evictions_total',
      () =>
        new Counter({
          name: 'tributary_pipeline_cache_evictions_total',
          help: 'Entity states forgotten to keep within the memory budget (read from the store again at their next event)',
          labelNames: ['topic'],
          registers,
        }),
    ),
  };
}

export async function startFeaturePipeline(options: FeaturePipelineOptions): Promise<FeaturePipeline> {
  const metrics = pipelineMetrics(options.registry);
  const flushIntervalMs = options.flushIntervalMs ?? 50;
  const backlogFlushIntervalMs = Math.max(flushIntervalMs, options.backlogFlushIntervalMs ?? 1_000);
  const backlogRecords = options.backlogRecords ?? 5_000;
  const stopFlushMs = options.stopFlushMs ?? 5_000;
  const groupsOf = (source: EventSource) => options.groups.filter((g) => g.definition.source === source.name);
  const fedSources = options.sources.filter((source) => groupsOf(source).length > 0);
  const cacheBytes = Math.floor((options.cacheBytes ?? DEFAULT_CACHE_BYTES) / Math.max(1, fedSources.length));

  const startSource = async (source: FeaturePipelineOptions['sources'][number]) => {
    const groups = groupsOf(source);
    const processor: FeatureProcessor = createFeatureProcessor({
      store: options.store,
      source,
      groups,
      allowedLatenessMs: options.allowedLatenessMs,
      cacheBytes,
      confirmsCommits: true,
      unreadableState: (entity, reason) => {
        metrics.unreadableStates.inc({ topic: source.topic });
        options.logger.warn({ entity, reason }, 'stored feature state unreadable; the entity starts over from its next events');
      },
      unwritableState: (entity, reason) => {
        metrics.entitiesWritten.inc({ outcome: 'unwritable' });
        options.logger.error(
          { entity, reason },
          'feature state not written: its key holds something else; written again with its next event',
        );
      },
    });
    let evictionsCounted = 0;
    // Batches of several partitions are loaded at once, but applied (with their dead letters
    // published) one at a time: a flush commits no offset whose dead letters are not out.
    let lock: Promise<unknown> = Promise.resolve();
    const exclusive = <T>(work: () => Promise<T>): Promise<T> => {
      const run = lock.then(work, work);
      lock = run.catch(() => undefined);
      return run;
    };
    let lastFlush = Date.now();
    let subscription: Subscription | null = null;
    const backlog = new Map<number, number>();
    const signal = stopSignal();
    /** The processor, for a batch: given up (failed with `Stopping`) when the pipeline stops first. */
    const applying = <T>(work: () => Promise<T>): Promise<T> =>
      signal.until(
        exclusive(() => {
          if (signal.stopped) throw new Stopping();
          return work();
        }),
      );
    const interval = () => ([...backlog.values()].some((lag) => lag > backlogRecords) ? backlogFlushIntervalMs : flushIntervalMs);

    /** Settles when the last flush has written and committed. */
    let flushing: Promise<void> = Promise.resolve();
    let flushesInFlight = 0;
    /**
     * The last flush's writes to the store failed: its changes wait in memory (see eachBatch). A
     * failed commit does not count: the writes are durable, and commits fail while the group rebalances.
     */
    let writeFailed = false;
    /**
     * Encodes the changed entities now (call it while holding the processor) and resolves
     * once they are written and their offsets committed; batches may be processed meanwhile.
     */
    const flush = (): Promise<void> => {
      const timer = metrics.flushSeconds.startTimer();
      // Recorded when it is over: a periodic flush that wrote nothing makes no span.
      const traced = activeContext();
      const startedAt = traced && nowMs();
      const previous = flushing;
      const written = processor.flush();
      written.then(
        () => (writeFailed = false),
        () => (writeFailed = true),
      );
      lastFlush = Date.now();
      const done = (async () => {
        const outcome = await written;
        // Readable from now on.
        const readable = Date.now();
        for (const time of outcome.eventTimes) metrics.freshness.observe({ topic: source.topic }, Math.max(0, readable - time) / 1000);
        // Commits in order: after the previous flush's.
        await previous;
        if (outcome.commits.length > 0) {
          await subscription!.commit(outcome.commits);
          processor.committed(outcome.commits);
        }
        metrics.entitiesWritten.inc({ outcome: 'written' }, outcome.written);
        const cache = processor.cacheStats();
        metrics.cachedEntities.set({ topic: source.topic }, cache.entities);
        metrics.cacheBytes.set({ topic: source.topic }, cache.bytes);
        if (cache.evicted > evictionsCounted) metrics.cacheEvictions.inc({ topic: source.topic }, cache.evicted - evictionsCounted);
        evictionsCounted = cache.evicted;
        if (outcome.fenced > 0) {
          metrics.entitiesWritten.inc({ outcome: 'fenced' }, outcome.fenced);
          options.logger.warn({ fenced: outcome.fenced }, 'entity states newer than ours were stored: this member lost partitions');
        }
        timer();
        if (traced && (hasSpan(traced) || outcome.written + outcome.fenced > 0 || outcome.commits.length > 0)) {
          recordSpan('feature_flush', traced, startedAt!, {
            'messaging.destination.name': source.topic,
            'tributary.entities.written': outcome.written,
            'tributary.entities.fenced': outcome.fenced,
            'tributary.offsets.committed': outcome.commits.length,
          });
        }
      })();
      if (traced)
        done.catch((error: unknown) =>
          recordSpan('feature_flush', traced, startedAt!, { 'messaging.destination.name': source.topic }, error),
        );
      flushesInFlight++;
      flushing = done.catch(() => undefined).finally(() => flushesInFlight--);
      return done;
    };
    const flushInBackground = () => {
      flush().catch((error: unknown) => options.logger.warn({ err: error }, 'feature flush failed; it will be retried'));
    };

    // One consumer group per source: members of a group must subscribe to the same topics.
    const groupId = `${options.groupId}-${source.name}`;
    const lag = consumerLag(options.registry, groupId, {
      eventLog: options.eventLog,
      logger: options.logger,
      refreshMs: options.lagRefreshMs,
    });
    const publish = (letters: OutgoingRecord[]) =>
      publishDeadLetters(options.eventLog, options.deadLetterTopic, letters, (sent) => {
        for (const letter of sent) metrics.deadLettered.inc({ consumer: groupId, reason: letter.headers!.reason! });
      });
    /** The attempt at the withheld dead letters in progress. */
    let publishingWithheld: Promise<void> | null = null;
    /** Publishes the dead letters whose publish failed (one attempt at a time); their partitions' commits then go on. */
    const publishWithheld = (): Promise<void> =>
      (publishingWithheld ??= (async () => {
        for (const withheld of processor.withheld()) {
          do await publish(withheld.letters);
          while (withheld.letters.length > 0);
          processor.published(withheld);
        }
      })().finally(() => (publishingWithheld = null)));
    /**
     * Fails a batch; a partition lost to another member's newer writes (`PartitionLost`) is first rewound to its
     * commit (once the flushes in flight have committed) and opened anew there, where its next batch starts.
     */
    const failed = (batch: RecordBatch) => async (error: unknown) => {
      if (error instanceof PartitionLost) {
        await flushing;
        await subscription!.rewind(batch.topic, batch.partition);
        processor.close(batch.topic, batch.partition);
      }
      throw error;
    };

    const handleBatch = traceBatch(async (batch, span) => {
      span?.setAttributes({
        'messaging.destination.name': batch.topic,
        'messaging.destination.partition.id': String(batch.partition),
        'messaging.consumer.group.name': groupId,
        'messaging.batch.message_count': batch.records.length,
      });
      const reportLag = (lagged: number | undefined) => lagged !== undefined && backlog.set(batch.partition, lagged);
      if (signal.stopped) throw new Stopping();
      reportLag(lag.arrived(batch));
      if (writeFailed) {
        // Nothing more is read into memory while its changes cannot be written (the store is down): the
        // changes are written again now, and when that fails too the batch fails, to be delivered again.
        await applying(async () => {
          await flushing;
          if (!writeFailed) return;
          await flush().catch((error: unknown) => {
            if (writeFailed) throw error;
          });
        });
      }
      // Nor while its partition's dead letters cannot be published: they go first, or the batch fails (to be delivered again).
      while (processor.withholds(batch.topic, batch.partition)) await signal.until(publishWithheld());
      if (!processor.isOpen(batch.topic, batch.partition)) {
        const committed = await signal.until(subscription!.committed(batch.topic, batch.partition));
        processor.open(batch.topic, batch.partition, decodeCheckpoint(committed.metadata), committed.offset);
      }
      // Loading the batch's entities from the store overlaps other partitions' batches.
      const loaded = await signal.until(processor.load(batch)).catch(failed(batch));
      await applying(async () => {
        const before = processor.checkpoint(loaded);
        const outcome = processor.apply(loaded);
        if (outcome.rejected.length > 0) {
          const letters = outcome.rejected.map((r) => deadLetter(r.record, r.reason, r.detail, groupId));
          await publish(letters).catch((error: unknown) => {
            // The batch is applied (delivered again, it would be applied twice): its partition commits no further
            // than before it until its dead letters are out, and a replay from that commit makes them again.
            processor.withhold(loaded, before, letters);
            options.logger.warn(
              { err: error, topic: batch.topic, partition: batch.partition },
              'dead letters not published; they are retried',
            );
          });
        }
        metrics.events.inc({ topic: batch.topic, outcome: 'applied' }, outcome.applied);
        metrics.events.inc({ topic: batch.topic, outcome: 'replayed' }, outcome.replayed);
        metrics.events.inc({ topic: batch.topic, outcome: 'duplicate' }, outcome.duplicates);
        metrics.events.inc({ topic: batch.topic, outcome: 'dead_lettered' }, outcome.rejected.length);
        span?.setAttributes({
          'tributary.events.applied': outcome.applied,
          'tributary.events.replayed': outcome.replayed,
          'tributary.events.duplicate': outcome.duplicates,
          'tributary.events.dead_lettered': outcome.rejected.length,
          'tributary.entities.touched': loaded.entities.reduce((sum, entities) => sum + entities.size, 0),
        });
        // Unless a rebalance took the partition meanwhile (the batch was dropped; the new owner reports it).
        if (processor.isOpen(batch.topic, batch.partition)) reportLag(lag.handled(batch));
        if (Date.now() - lastFlush >= interval()) {
          // One flush in flight at most: the next batches are processed while this one writes.
          await flushing;
          flushInBackground();
        }
      }).catch(failed(batch));
    });
    /**
     * A fetch of transaction markers or aborted records only (`emptyBatches`): nothing to apply, and nothing to
     * commit (the flushes commit past the records applied; a replay from there fetches the markers again). It
     * only moves the lag, which would otherwise stay at 1 or more for a partition that ends with a marker.
     */
    const handleEmpty = async (batch: RecordBatch) => {
      if (signal.stopped) return;
      const lagged = lag.arrived(batch);
      if (lagged !== undefined) backlog.set(batch.partition, lagged);
    };

    subscription = await options.eventLog.subscribe({
      groupId,
      topics: [source.topic],
      fromBeginning: true,
      autoCommit: false,
      onRebalance: () => {
        processor.reset();
        // What waited to be written is forgotten: consumption resumes from the commits.
        writeFailed = false;
        lag.forget();
        backlog.clear();
      },
      onError: (error) => {
        if (!(error instanceof Stopping))
          options.logger.warn({ err: error, topic: source.topic }, 'feature batch failed; it will be retried');
      },
      concurrentPartitions: CONCURRENT_PARTITIONS,
      emptyBatches: true,
      eachBatch: (batch) => (batch.records.length === 0 ? handleEmpty(batch) : handleBatch(batch)),
    });

    // Events that arrived in a quiet moment are written within the interval too.
    const timer = setInterval(() => {
      if (processor.withheld().length > 0) publishWithheld().catch(() => undefined);
      if (Date.now() - lastFlush < interval()) return;
      if (flushesInFlight > 0) return; // the next tick then
      exclusive(async () => {
        // Again in turn: a batch may have started a flush while this waited for it.
        if (flushesInFlight > 0 || Date.now() - lastFlush < interval()) return;
        flushInBackground();
      }).catch(() => undefined);
    }, flushIntervalMs);
    timer.unref();

    return {
      flush: () => exclusive(() => flush()),
      stop: async () => {
        clearInterval(timer);
        lag.stop();
        // The batches not yet applied are given up (a stop does not wait for their reads from a store that is down).
        signal.stop();
        // When the last write failed (the store is down), a final flush would wait for the client's retries, in vain.
        await within(writeFailed ? Promise.resolve() : exclusive(() => flush()), stopFlushMs).catch((error: unknown) => {
          if (error instanceof TimedOut) {
            options.logger.warn({ topic: source.topic }, 'final flush not done in time; the next run replays from the last commit');
          } else options.logger.warn({ err: error, topic: source.topic }, 'final flush failed; the next run replays from the last commit');
        });
        await subscription!.stop();
        // The keyed state goes with the process's interest in it (a stopped pipeline may be kept).
        processor.reset();
      },
    };
  };
  const runners = await startTogether(fedSources.map(startSource));
  return {
    flush: async () => {
      await Promise.all(runners.map((r) => r.flush()));
    },
    stop: async () => {
      await Promise.all(runners.map((r) => r.stop()));
    },
  };
}
