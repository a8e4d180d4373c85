/**
 * The operations endpoints of a service without an API of its own: `/metrics`,
 * `/healthz` (the process runs, and has started) and `/readyz` (its dependencies answer).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface OpsServerOptions {
  registry: Registry;
  ready(): Promise<void>;
  /**
   * Whether the service has started: until then `/healthz` answers 503 `starting` (a startup
   * probe keeps waiting), while `/metrics` is served from the first moment. Default: started.
   */
  started?: () => boolean;
  host: string;
  port: number;
}

export async function startOpsServer(options: OpsServerOptions): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const send = (status: number, body: string, type = 'application/json') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(405, JSON.stringify({ code: 'METHOD_NOT_ALLOWED', message: 'only GET is served here' }));
    if (path === '/healthz') {
      if (options.started && !options.started()) return send(503, JSON.stringify({ status: 'starting' }));
      return send(200, JSON.stringify({ status: 'ok' }));
    }
    if (path === '/readyz') {
      options.ready().then(
        () => send(200, JSON.stringify({ status: 'ready' })),
        (error: unknown) => send(503, JSON.stringify({ status: 'not ready', reason: (error as Error).message })),
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
