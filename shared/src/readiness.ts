/**
 * Readiness of a service, as its `/readyz` reports it. A replica is ready when it can do its
 * work: it has started and is not stopping. Its dependencies (Redis, Kafka) are reported
 * beside, not required: each service is built to go on through their outages (predictions
 * degrade, the prediction log buffers, consumers resume from their commits), so an outage of a
 * shared dependency must not take every replica out of its Service at once. `?deep=true` asks
 * for the operator's check instead, which fails while a dependency is down.
 */

/** What `/readyz` reports of each dependency. */
export type DependencyState = 'up' | 'down';

export interface DependencyReport {
  dependencies: Record<string, DependencyState>;
  /** Why each dependency that is down is, by name (none when every one is up). */
  problems: Record<string, string>;
}

export interface Dependency {
  /** Resolves when the dependency answers. */
  ping(): Promise<unknown>;
  /** How long an answer is reused before the dependency is asked again (default 0: every check asks). */
  reuseMs?: number;
}

/**
 * Longest wait for a dependency's answer: a probe must be answered within its own timeout
 * (2 s for the inference service) however long a client library keeps a command queued.
 */
export const DEPENDENCY_TIMEOUT_MS = 1_000;

/** Checks the dependencies, each within `timeoutMs`; an answer is reused for its `reuseMs`. */
export function dependencyChecks(
  dependencies: Record<string, Dependency>,
  timeoutMs = DEPENDENCY_TIMEOUT_MS,
): () => Promise<DependencyReport> {
  const last = new Map<string, { at: number; problem: Promise<string | null> }>();
  const ask = (dependency: Dependency): Promise<string | null> => {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
    });
    const answer = Promise.resolve()
      .then(() => dependency.ping())
      .then(
        () => null,
        (error: unknown) => (error instanceof Error ? error.message : String(error)) || 'failed',
      );
    return Promise.race([answer, late]).finally(() => clearTimeout(timer));
  };
  return async () => {
    const now = Date.now();
    const entries = await Promise.all(
      Object.entries(dependencies).map(async ([name, dependency]) => {
        let checked = last.get(name);
        if (checked === undefined || now - checked.at >= (dependency.reuseMs ?? 0)) {
          checked = { at: now, problem: ask(dependency) };
          last.set(name, checked);
        }
        return [name, await checked.problem] as const;
      }),
    );
    const report: DependencyReport = { dependencies: {}, problems: {} };
    for (const [name, problem] of entries) {
      report.dependencies[name] = problem === null ? 'up' : 'down';
      if (problem !== null) report.problems[name] = problem;
    }
    return report;
  };
}

/**
 * Whether a request asked for the deep check: `deep=true` (or `1`); `false`, `0` or no value: the
 * readiness check. Anything else is refused (null), so that a misspelt flag is not taken for a pass.
 */
export function deepCheckAsked(deep: string | string[] | undefined): boolean | null {
  if (deep === undefined) return false;
  if (Array.isArray(deep)) return null;
  if (deep === 'true' || deep === '1') return true;
  if (deep === 'false' || deep === '0') return false;
  return null;
}

/**
 * The status and body of `/readyz`: 503 while the replica cannot serve (`notReady` says why) or,
 * for the deep check, while a dependency is down; 200 otherwise. The body names every
 * dependency's state either way, and why those that are down are.
 */
export function readinessAnswer(
  notReady: string | null,
  report: DependencyReport,
  deep: boolean,
  extra: Record<string, unknown> = {},
): { status: number; body: Record<string, unknown> } {
  const down = Object.keys(report.problems);
  const reason = notReady ?? (deep && down.length > 0 ? `${down.join(', ')} down` : null);
  return {
    status: reason === null ? 200 : 503,
    body: {
      status: reason === null ? 'ready' : 'not ready',
      ...(reason === null ? {} : { reason }),
      ...extra,
      dependencies: report.dependencies,
      ...(down.length > 0 ? { problems: report.problems } : {}),
    },
  };
}
