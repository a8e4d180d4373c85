import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { checkBrokersReachable } from '../src/index.js';

/** A port on which nothing listens (one that was just given and released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe('checkBrokersReachable', () => {
  const servers: net.Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  it('fails naming every broker and why when none accepts a connection', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    await expect(checkBrokersReachable([`127.0.0.1:${a}`, `[::1]:${b}`])).rejects.toThrow(
      new RegExp(
        `^no Kafka broker of KAFKA_BROKERS answers: 127\\.0\\.0\\.1:${a} \\(ECONNREFUSED\\), \\[::1\\]:${b} \\((ECONNREFUSED|EADDRNOTAVAIL|ENETUNREACH)\\)$`,
      ),
    );
  });

  it('passes when one broker of several accepts', async () => {
    const server = net.createServer((socket) => socket.destroy());
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    await expect(checkBrokersReachable([`127.0.0.1:${await closedPort()}`, `127.0.0.1:${port}`])).resolves.toBeUndefined();
  });
});
