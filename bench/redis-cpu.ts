/** The CPU time Redis has used since it started (user + system, `INFO cpu`), in seconds. */
import type { Cluster, Redis } from 'ioredis';

export async function redisCpuSeconds(client: Redis | Cluster): Promise<number> {
  const info = await client.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
  return field('used_cpu_user') + field('used_cpu_sys');
}
