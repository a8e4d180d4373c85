/**
 * Connections to Redis, a single server or a Redis Cluster, from the configuration:
 * `REDIS_URL` names the server (or, with `REDIS_CLUSTER=true`, one or more comma-separated
 * seed nodes of the cluster: the client discovers the others), `rediss://` turns TLS on and
 * the URL's user and password authenticate (on every node of a cluster).
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';

export interface RedisTarget {
  /** `redis://[user:password@]host:port[/db]`; with `cluster`, several comma-separated. */
  url: string;
  cluster?: boolean;
}

/** The seed URLs of a target (one for a single server). */
export function redisUrls(target: RedisTarget): URL[] {
  return target.url
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
    .map((u) => new URL(u));
}

/** Where a target points, without its credentials (for logs). */
export function describeRedis(target: RedisTarget): string {
  const hosts = redisUrls(target).map((u) => u.host);
  return target.cluster ? `Redis Cluster ${hosts.join(',')}` : `Redis ${hosts.join(',')}`;
}

/**
 * A client for the target. A cluster client routes each command to the node that holds
 * its key's slot; a script call or pipeline must then name keys of one slot only (the
 * project's keys put an entity's, a model's or a request's keys in one slot with a `{…}`
 * hash tag), and auto-pipelining groups the commands sent in one tick per node.
 */
export function connectRedis(target: RedisTarget, options: RedisOptions = {}): Redis | Cluster {
  if (!target.cluster) return new Redis(target.url, options);
  const urls = redisUrls(target);
  const first = urls[0]!;
  const { enableAutoPipelining, maxRetriesPerRequest, ...nodeOptions } = options;
  return new Cluster(
    urls.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    {
      enableAutoPipelining,
      redisOptions: {
        ...nodeOptions,
        maxRetriesPerRequest,
        ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
        ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
        ...(first.protocol === 'rediss:' ? { tls: {} } : {}),
      },
    },
  );
}

/**
 * Closes a client: QUIT once connected, else dropped (a client that never connected, or is
 * reconnecting, would keep the QUIT queued while it retries, holding up a shutdown).
 */
export async function closeRedis(client: Redis | Cluster): Promise<void> {
  if (client.status !== 'ready') client.disconnect();
  else await client.quit().catch(() => client.disconnect());
}
