/**
 * Prediction-log records and labels for the monitor benchmark, shaped as the inference
 * service publishes them (PredictionLogRecord, keyed by request id) and as the simulator
 * publishes labels. Feature values and scores are drawn from the model version's reference
 * profile (so the live data looks like the training data), with a few percent of high-score
 * frauds; labels are drawn from the scores.
 */
import { randomUUID } from 'node:crypto';
import {
  float32Decimal,
  predictionRecordJson,
  type OutgoingRecord,
  type PredictionLogRecord,
  type Random,
  type ReferenceProfile,
} from '../shared/src/index.js';

export interface TrafficPlan {
  run: string;
  predictions: number;
  /** Share of predictions that get a label. */
  labelShare: number;
  /** Share of the labelled predictions whose label is published before it (at the head of the labels topic). */
  earlyShare: number;
  /** Share of labels published twice (a second label for one request: a duplicate to the join). */
  duplicateShare: number;
  /** Labels for requests that never had a prediction, per label. */
  orphanShare: number;
  /** Prediction times are spread evenly over [start, start + spreadMs). */
  start: number;
  spreadMs: number;
}

interface Draws {
  score: Float64Array;
  /** -1: no label, else the label (0 or 1). */
  label: Int8Array;
  delayMs: Float64Array;
}

export class PredictionTraffic {
  private readonly draws: Draws;
  private readonly sampler: ReturnType<typeof profileSampler>;

  constructor(
    private readonly plan: TrafficPlan,
    private readonly random: Random,
    profile: ReferenceProfile,
    private readonly model = { name: 'fraud_detector', version: '1' },
  ) {
    this.sampler = profileSampler(profile, random);
    const n = plan.predictions;
    this.draws = { score: new Float64Array(n), label: new Int8Array(n).fill(-1), delayMs: new Float64Array(n) };
    for (let i = 0; i < n; i++) {
      const fraud = random.next() < 0.03;
      const score = fraud ? 0.5 + random.next() / 2 : Math.min(1, Math.max(0, this.sampler.value('score')));
      this.draws.score[i] = score;
      if (random.next() < plan.labelShare) this.draws.label[i] = random.next() < (fraud ? 0.8 : score) ? 1 : 0;
      this.draws.delayMs[i] = -Math.log(1 - random.next()) * 5 * 60_000;
    }
  }

  requestId(i: number): string {
    return `${this.plan.run}-${i}`;
  }

  predictedAt(i: number): number {
    return this.plan.start + Math.floor((i / this.plan.predictions) * this.plan.spreadMs);
  }

  /** The prediction-log records of predictions [from, to). */
  predictions(from: number, to: number): OutgoingRecord[] {
    const out: OutgoingRecord[] = [];
    for (let i = from; i < to; i++) {
      const predictedAt = this.predictedAt(i);
      // The model's float32 input, as the service logs it.
      const features = this.sampler.row();
      for (const name in features) features[name] = Math.fround(features[name]!);
      const amount = features['request:amount'] ?? 0;
      const channel = features['on_demand:channel_app'] === 1 ? 'app' : features['on_demand:channel_web'] === 1 ? 'web' : 'pos';
      const defaulted = this.random.next() < 0.02 ? ['merchant_transactions:count_1h', 'merchant_transactions:count_24h'] : [];
      const latency = 0.4 + this.random.next() * 3;
      const record: PredictionLogRecord = {
        prediction_id: randomUUID(),
        request_id: this.requestId(i),
        model: this.model,
        variant: this.random.next() < 0.1 ? 'canary' : 'champion',
        entities: { user_id: `u${this.random.int(20_000)}`, merchant_id: `m${this.random.int(2_000)}` },
        request: { amount, country: COUNTRIES[this.random.int(COUNTRIES.length)]!, channel },
        features,
        defaulted,
        feature_age_ms: {
          user_transactions: Math.round(this.random.next() * 60_000),
          merchant_transactions: defaulted.length > 0 ? null : Math.round(this.random.next() * 5_000),
        },
        score: float32Decimal(Math.fround(this.draws.score[i]!)),
        degraded: false,
        requested_at: predictedAt - Math.ceil(latency),
        predicted_at: predictedAt,
        latency_ms: latency,
      };
      out.push({ key: record.request_id, value: predictionRecordJson(record) });
    }
    return out;
  }

  /**
   * Every label in publishing order: first the labels of the last `earlyShare` of the
   * labelled predictions (they come before their predictions are consumed), then the others
   * in prediction order, each duplicate right after its label, orphans interleaved.
   */
  *labels(): Generator<OutgoingRecord> {
    const n = this.plan.predictions;
    const labelled: number[] = [];
    for (let i = 0; i < n; i++) if (this.draws.label[i]! >= 0) labelled.push(i);
    const early = Math.round(labelled.length * this.plan.earlyShare);
    const order = [...labelled.slice(labelled.length - early), ...labelled.slice(0, labelled.length - early)];
    const now = Date.now();
    let orphans = 0;
    for (const i of order) {
      const label = {
        request_id: this.requestId(i),
        label: this.draws.label[i] as 0 | 1,
        ts: Math.min(now, this.predictedAt(i) + Math.round(this.draws.delayMs[i]!)),
      };
      const record = { key: label.request_id, value: JSON.stringify(label) };
      yield record;
      if (this.random.next() < this.plan.duplicateShare) yield record;
      if (this.random.next() < this.plan.orphanShare) {
        const id = `${this.plan.run}-orphan-${orphans++}`;
        yield { key: id, value: JSON.stringify({ request_id: id, label: 0, ts: label.ts }) };
      }
    }
  }
}

const COUNTRIES = ['US', 'US', 'US', 'GB', 'FR', 'DE', 'CA', 'BR', 'IN', 'JP'];

/** Draws rows of feature values (and scores) from a reference profile: a bin by its reference count, a value inside it. */
function profileSampler(profile: ReferenceProfile, random: Random) {
  const value = (name: string): number => {
    const feature = profile.features[name];
    if (!feature || feature.kind !== 'numeric') return random.next();
    let pick = random.next() * feature.count;
    let bin = 0;
    while (bin < feature.counts.length - 1 && pick >= feature.counts[bin]!) pick -= feature.counts[bin++]!;
    const { edges } = feature;
    if (edges.length === 0) return feature.quantiles[0] ?? 0;
    const low = bin === 0 ? Math.min(0, edges[0]!) : edges[bin - 1]!;
    // Features with integer edges (counts, 0/1 flags) get integer values.
    const integral = edges.every((e) => Number.isInteger(e));
    const last = edges[edges.length - 1]!;
    const high = bin < edges.length ? edges[bin]! : integral && edges.length === 1 ? last + 1 : last * 1.5 + 1;
    const x = low + random.next() * (high - low);
    return integral ? Math.floor(x) : x;
  };
  const names = Object.keys(profile.features).filter((name) => name !== 'score');
  return {
    value,
    row: (): Record<string, number> => Object.fromEntries(names.map((name) => [name, value(name)])),
  };
}
