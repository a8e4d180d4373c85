/**
 * Steady prediction traffic: a few clients, each sending `POST /v1/predict` one after the
 * other with a short pause, every request with its own request id; every answer is counted
 * by status, degraded flag and model version, and the prediction ids of the answered ones
 * are kept (the prediction log is checked against them).
 */
export interface LoadFigures {
  requests: number;
  statuses: Map<number, number>;
  /** Requests that got no HTTP answer (connection refused or reset, timeout). */
  unanswered: number;
  errors5xx: number;
  degraded: number;
  /** Answers by model version. */
  versions: Map<string, number>;
  predictionIds: Set<string>;
}

export interface SteadyLoadOptions {
  url: string;
  clients: number;
  /** Pause between one client's requests. */
  pauseMs: number;
  /** Prefix of the request ids (unique per run). */
  run: string;
  users?: number;
  headers?: Record<string, string>;
}

export class SteadyLoad {
  readonly figures: LoadFigures = {
    requests: 0,
    statuses: new Map(),
    unanswered: 0,
    errors5xx: 0,
    degraded: 0,
    versions: new Map(),
    predictionIds: new Set(),
  };
  /** The last few 5xx and unanswered requests, with what came back. */
  readonly failures: string[] = [];
  private running = true;
  private sequence = 0;
  private readonly clients: Promise<void>[];

  constructor(private readonly options: SteadyLoadOptions) {
    this.clients = Array.from({ length: options.clients }, () => this.client());
  }

  private async client(): Promise<void> {
    const users = this.options.users ?? 500;
    while (this.running) {
      const i = this.sequence++;
      const body = JSON.stringify({
        request_id: `${this.options.run}-r${i}`,
        entities: { user_id: `u_${i % users}`, merchant_id: `m_${i % 50}` },
        features: { amount: 10 + (i % 500), country: i % 7 ? 'US' : 'GB', channel: (['web', 'app', 'pos'] as const)[i % 3] },
      });
      this.figures.requests++;
      try {
        const response = await fetch(`${this.options.url}/v1/predict`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...this.options.headers },
          body,
          signal: AbortSignal.timeout(15_000),
        });
        const text = await response.text();
        const f = this.figures;
        f.statuses.set(response.status, (f.statuses.get(response.status) ?? 0) + 1);
        if (response.status >= 500) {
          f.errors5xx++;
          this.remember(`${response.status} ${text.slice(0, 300)}`);
        } else if (response.status === 200) {
          const answer = JSON.parse(text) as { prediction_id: string; degraded: boolean; model: { version: string } };
          if (answer.degraded) f.degraded++;
          f.versions.set(answer.model.version, (f.versions.get(answer.model.version) ?? 0) + 1);
          f.predictionIds.add(answer.prediction_id);
        }
      } catch (error) {
        this.figures.unanswered++;
        this.remember(`no answer: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.pauseMs));
    }
  }

  private remember(failure: string): void {
    this.failures.push(failure);
    if (this.failures.length > 20) this.failures.shift();
  }

  /** Answers with status 200 so far. */
  get answered(): number {
    return this.figures.statuses.get(200) ?? 0;
  }

  async stop(): Promise<LoadFigures> {
    this.running = false;
    await Promise.all(this.clients);
    return this.figures;
  }
}

export const statusSummary = (statuses: Map<number, number>) =>
  [...statuses.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, n]) => `${status}: ${n}`)
    .join(', ') || 'none';
