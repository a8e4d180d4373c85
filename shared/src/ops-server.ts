/**
 * The operations endpoints of a service without an API of its own: `/metrics`,
 * `/healthz` (the process runs, and has started) and `/readyz` (it has started and is not
 * stopping; its dependencies' state in the body; `/readyz?deep=true` fails while one is down).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import { deepCheckAsked, dependencyChecks, readinessAnswer, type Dependency } from './readiness.js';

export interface OpsServerOptions {
  registry: Registry;
  /** Why the service cannot do its work now (`starting: …`, `stopping`), or null when it can. */
  notReady(): string | null;
  /** The dependencies `/readyz` reports, by name (`online_store`, `event_log`). */
  dependencies: Record<string, Dependency>;
  /**
   * Whether the service has started: until then `/healthz` answers 503 `starting` (a startup
   * probe keeps waiting), while `/metrics` is served from the first moment. Default: started.
   */
  started?: () => boolean;
  host: string;
  port: number;
}

export async function startOpsServer(options: OpsServerOptions): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const checkDependencies = dependencyChecks(options.dependencies);
  const server = createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    const [path, query = ''] = (req.url ?? '/').split(/\?(.*)/s);
    if (req.method !== 'GET') return send(405, JSON.stringify({ code: 'METHOD_NOT_ALLOWED', message: 'only GET is served here' }));
    if (path === '/healthz') {
      if (options.started && !options.started()) return send(503, JSON.stringify({ status: 'starting' }));
      return send(200, JSON.stringify({ status: 'ok' }));
    }
    if (path === '/readyz') {
      const values = new URLSearchParams(query).getAll('deep');
      const deep = deepCheckAsked(values.length > 1 ? values : values[0]);
      if (deep === null) return send(400, JSON.stringify({ code: 'BAD_REQUEST', message: 'deep must be true or false' }));
      checkDependencies().then(
        (report) => {
          const answer = readinessAnswer(options.notReady(), report, deep);
          send(answer.status, JSON.stringify(answer.body));
        },
        (error: unknown) => send(500, JSON.stringify({ code: 'INTERNAL', message: (error as Error).message })),
      );
      return;
    }
    if (path === '/metrics') {
      options.registry.metrics().then(
        (text) => send(200, text, options.registry.contentType),
        (error: unknown) => send(500, JSON.stringify({ code: 'INTERNAL', message: (error as Error).message })),
      );
      return;
    }
    send(404, JSON.stringify({ code: 'NOT_FOUND', message: `no route ${path}` }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  return {
    server,
    url: `http://${options.host}:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
