/**
 * A TCP proxy a test can cut: a service that connects through it sees its server go away
 * (open connections dropped, new ones closed at once) until the test restores it. Used to
 * give one process an outage of a shared server (Redis) without touching the server. It can
 * also lose a reply: the server ran the command, the connection drops before its answer.
 */
import net from 'node:net';

export interface TcpProxy {
  /** `host:port` to connect to instead of the upstream. */
  address: string;
  /** Drops every connection and refuses new ones until `restore`. */
  cut(): void;
  /**
   * The next data the server sends is not passed on: its connection is dropped instead (the
   * server has run what it answers; the client never hears of it). Resolves when it happened.
   */
  loseNextReply(): Promise<void>;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(upstream: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<net.Socket>();
  let down = false;
  let loseReply: (() => void) | null = null;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const target = net.connect(upstream);
    open.add(client).add(target);
    const drop = () => {
      client.destroy();
      target.destroy();
      open.delete(client);
      open.delete(target);
    };
    client.on('error', drop).on('close', drop);
    target.on('error', drop).on('close', drop);
    client.pipe(target);
    target.on('data', (reply: Buffer) => {
      if (loseReply !== null) {
        loseReply();
        loseReply = null;
        drop();
        return;
      }
      if (!client.write(reply)) {
        target.pause();
        client.once('drain', () => target.resume());
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${port}`,
    cut: () => {
      down = true;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    restore: () => {
      down = false;
    },
    loseNextReply: () => new Promise<void>((resolve) => (loseReply = resolve)),
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
