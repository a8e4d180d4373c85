/**
 * The feature pipeline's verifier. The reference is a run that never crashed: the same
 * pipeline code (createFeatureProcessor) applied once, in memory, to every partition of the
 * source topic as it is on the broker (read back, so records a retried send wrote twice are
 * in both), in offset order. Then:
 * - every entity's features in the live store must equal the reference's (read at three
 *   times, so that every window is compared);
 * - per card holder, the live event count over 24 h against the reference's: below it,
 *   events were lost; above it, events were counted twice;
 * - every record the reference set aside must be on the dead-letter topic with the same
 *   reason (missing: lost), and no record the reference applied may be there (applied and
 *   set aside: counted twice).
 */
import { createFeatureProcessor, sourceDecoder } from '@tributary/features';
import {
  fraud,
  MemoryOnlineStore,
  readFeatureValues,
  type CompiledFeatureGroup,
  type EntityKey,
  type LogRecord,
  type OnlineStore,
} from '@tributary/shared';
import { readDeadLetters, readTopic } from './kafka.js';

export interface FeatureVerdict {
  /** Records on the source topic. */
  produced: number;
  /** By the reference: records applied, set aside (by reason), duplicates of an event already applied. */
  applied: number;
  rejected: Record<string, number>;
  duplicates: number;
  lost: number;
  doubled: number;
  /** Entity reads (group, id, time) whose values differ from the reference's, of `reads`. */
  mismatches: number;
  reads: number;
  deadLetters: { expected: number; found: number; missing: number; wrongReason: number; unexpected: number };
  /** Partitions the broker had already trimmed (the reference would be incomplete). */
  truncated: number[];
  /** Seconds the live store took to equal the reference after the call. */
  convergedAfter: number | null;
  /** Every record on the topic: where it is, and the reason the reference set it aside (null: accepted). */
  records: { key: string | null; partition: number; offset: string; reason: string | null; deadLettered: string | null }[];
}

export interface VerifyOptions {
  brokers: string[];
  topic: string;
  deadLetterTopic: string;
  /** The live online store (the pipeline's Redis, its key prefix). */
  store: OnlineStore;
  allowedLatenessMs: number;
  /** How long the live store may take to catch up with the reference. */
  waitMs: number;
  log?(message: string): void;
}

const COUNT = 'count_24h';

export async function verifyFeatures(options: VerifyOptions): Promise<FeatureVerdict> {
  const now = Date.now();
  const contents = await readTopic(options.brokers, options.topic);
  const example = fraud.fraudExample({ transactions: options.topic });
  const source = example.sources[0]!;
  const groups = example.groups.filter((g) => g.definition.source === source.name);
  const reference = new MemoryOnlineStore(() => now);
  const processor = createFeatureProcessor({
    store: reference,
    groups,
    source,
    allowedLatenessMs: options.allowedLatenessMs,
    clock: () => now,
  });
  const rejectedAt = new Map<string, string>();
  const rejected: Record<string, number> = {};
  let applied = 0;
  let duplicates = 0;
  contents.partitions.forEach((records, partition) => processor.open(options.topic, partition, -Infinity));
  for (const [partition, records] of contents.partitions.entries()) {
    if (records.length === 0) continue;
    const outcome = await processor.process({ topic: options.topic, partition, records });
    applied += outcome.applied;
    duplicates += outcome.duplicates;
    for (const r of outcome.rejected) {
      rejectedAt.set(`${r.record.topic}:${r.record.partition}:${r.record.offset}`, r.reason);
      rejected[r.reason] = (rejected[r.reason] ?? 0) + 1;
    }
  }
  await processor.flush();

  const keys = entityKeys(groups, contents.partitions.flat(), source);
  const expected = await reference.read(keys);
  const readAt = [now, now + 7 * 60_000, now + 61 * 60_000];
  const countGroup = groups[0]!;
  const compare = async () => {
    const actual = await options.store.read(keys);
    let mismatches = 0;
    let lost = 0;
    let doubled = 0;
    keys.forEach((key, i) => {
      const group = groups.find((g) => g.id === key.group)!;
      for (const at of readAt) {
        const a = readFeatureValues(group, actual[i] ?? null, at).values;
        const b = readFeatureValues(group, expected[i] ?? null, at).values;
        if (JSON.stringify(a) !== JSON.stringify(b)) mismatches++;
        if (at === now && group === countGroup) {
          const diff = Number(a[COUNT] ?? 0) - Number(b[COUNT] ?? 0);
          if (diff < 0) lost -= diff;
          else doubled += diff;
        }
      }
    });
    return { mismatches, lost, doubled };
  };
  const deadline = Date.now() + options.waitMs;
  let result = await compare();
  let convergedAfter: number | null = result.mismatches === 0 ? 0 : null;
  while (result.mismatches > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    result = await compare();
    if (result.mismatches === 0) convergedAfter = (Date.now() - now) / 1000;
  }
  options.log?.(`features: ${result.mismatches} of ${keys.length * readAt.length} entity reads differ from the reference`);

  // Dead letters: every record the reference set aside, with its reason; at least once (a replay may repeat one).
  let letters = await readDeadLetters(options.brokers, options.deadLetterTopic);
  const letterDeadline = Date.now() + options.waitMs;
  const present = () => [...rejectedAt.keys()].filter((k) => letters.letters.has(k)).length;
  while (present() < rejectedAt.size && Date.now() < letterDeadline) {
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    letters = await readDeadLetters(options.brokers, options.deadLetterTopic);
  }
  let missing = 0;
  let wrongReason = 0;
  for (const [at, reason] of rejectedAt) {
    const letter = letters.letters.get(at);
    if (!letter) missing++;
    else if (letter.reason !== reason) wrongReason++;
  }
  const unexpected = [...letters.letters.keys()].filter((at) => at.startsWith(`${options.topic}:`) && !rejectedAt.has(at)).length;

  return {
    produced: contents.count,
    applied,
    rejected,
    duplicates,
    lost: result.lost + missing,
    doubled: result.doubled + unexpected,
    mismatches: result.mismatches,
    reads: keys.length * readAt.length,
    deadLetters: { expected: rejectedAt.size, found: present(), missing, wrongReason, unexpected },
    truncated: contents.truncated,
    convergedAfter,
    records: contents.partitions.flat().map((r) => {
      const at = `${r.topic}:${r.partition}:${r.offset}`;
      return {
        key: r.key,
        partition: r.partition,
        offset: r.offset,
        reason: rejectedAt.get(at) ?? null,
        deadLettered: letters.letters.get(at)?.reason ?? null,
      };
    }),
  };
}

/** Every (group, entity id) the topic's valid records touch. */
function entityKeys(groups: CompiledFeatureGroup[], records: LogRecord[], source: ReturnType<typeof fraud.fraudExample>['sources'][0]) {
  const decode = sourceDecoder(source);
  const seen = new Set<string>();
  const keys: EntityKey[] = [];
  for (const record of records) {
    const decoded = decode(record, Date.now());
    if (!decoded.ok) continue;
    for (const group of groups) {
      const id = group.entityId(decoded.event.values);
      if (id === null) continue;
      const slot = `${group.id}\u0000${id}`;
      if (seen.has(slot)) continue;
      seen.add(slot);
      keys.push({ group: group.id, entity: group.entity, id });
    }
  }
  return keys;
}
