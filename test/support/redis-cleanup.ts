/** Makes a test's store leave nothing behind on the shared Redis: its `close` first deletes the keys under its prefix. */
import { Redis } from 'ioredis';

export function deletingKeysOnClose<T extends { close(): Promise<void> }>(store: T, redisUrl: string, prefix: string): T {
  const close = store.close.bind(store);
  store.close = async () => {
    const client = new Redis(redisUrl);
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(...keys);
    await client.quit();
    await close();
  };
  return store;
}
