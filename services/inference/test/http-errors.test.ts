/** Answers made before or outside the routes (malformed HTTP, a body in another charset or setting a prototype, a replica shutting down) in the service's error shape. */
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { buildTestApp, validRequest } from './build.js';

type App = Awaited<ReturnType<typeof buildTestApp>>;
let current: App | undefined;
afterEach(async () => {
  await current?.app.close();
  current = undefined;
});

/** Sends `request` as raw bytes and reads the whole answer (the server closes the connection). */
async function raw(port: number, request: string): Promise<{ status: number; headers: string; body: unknown }> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.write(request);
  await new Promise<void>((resolve, reject) => {
    socket.once('close', () => resolve());
    socket.once('error', reject);
  });
  const text = Buffer.concat(chunks).toString();
  const [head = '', body = ''] = text.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), headers: head.toLowerCase(), body: JSON.parse(body) };
}

describe('malformed HTTP', () => {
  it.each([
    ['a Content-Length that is not a number', 'Content-Length: abc\r\n'],
    ['a header line without a colon', 'Not a header\r\n'],
  ])('is answered 400 with a {code, message} body: %s', async (_name, header) => {
    current = await buildTestApp();
    await current.app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = current.app.server.address() as { port: number };
    const answer = await raw(port, `POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${header}\r\n{}`);
    expect(answer.status).toBe(400);
    expect(answer.headers).toContain('content-type: application/json');
    expect(answer.body).toEqual({ code: 'BAD_REQUEST', message: expect.stringMatching(/^malformed HTTP request: Parse Error: /) });
  });
});

describe('the charset of a request body', () => {
  it('is UTF-8: a body declared in another charset is refused 415, naming UTF-8', async () => {
    current = await buildTestApp();
    const send = (contentType: string, payload: Buffer) =>
      current!.app.inject({ method: 'POST', url: '/v1/predict', headers: { 'content-type': contentType }, payload });
    const text = JSON.stringify(validRequest);
    for (const [charset, encoding] of [
      ['iso-8859-1', 'latin1'],
      ['UTF-16', 'utf16le'],
      ['"windows-1252"', 'latin1'],
    ] as const) {
      const answer = await send(`application/json; charset=${charset}`, Buffer.from(text, encoding));
      expect(answer.statusCode, charset).toBe(415);
      expect(answer.json(), charset).toEqual({
        code: 'UNSUPPORTED_MEDIA_TYPE',
        message: `charset "${charset.replaceAll('"', '').toLowerCase()}" is not supported: send JSON in UTF-8 (charset=utf-8)`,
      });
    }
    for (const contentType of ['application/json; charset=utf-8', 'application/json;charset=UTF8', 'application/json; charset="utf-8"']) {
      expect((await send(contentType, Buffer.from(text))).statusCode, contentType).toBe(200);
    }
  });

  it('is refused 400 when its bytes are not UTF-8, on every route that reads a body, rather than read with U+FFFD in their place', async () => {
    current = await buildTestApp();
    // A request id of the bytes ff fe (no UTF-8 sequence), a lone continuation byte, a surrogate encoded in UTF-8 (ed a0 80).
    const [before, after] = JSON.stringify({ ...validRequest, request_id: '@' }).split('@') as [string, string];
    for (const bad of [[0xff, 0xfe], [0x80], [0xed, 0xa0, 0x80]]) {
      const payload = Buffer.concat([Buffer.from(before), Buffer.from(bad), Buffer.from(after)]);
      for (const url of ['/v1/predict', '/v1/events/transactions']) {
        const answer = await current.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload });
        expect(answer.statusCode, `${url} ${bad}`).toBe(400);
        expect(answer.json(), `${url} ${bad}`).toEqual({ code: 'BAD_REQUEST', message: 'the body is not valid UTF-8' });
      }
    }
    // Text beyond ASCII, in UTF-8, is read as it is.
    const accented = await current.app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { 'content-type': 'application/json' },
      payload: Buffer.from(JSON.stringify({ ...validRequest, request_id: 'café-✓-𝄞' })),
    });
    expect([accented.statusCode, accented.json().request_id]).toEqual([200, 'café-✓-𝄞']);
  });
});

describe('a body that would set a prototype', () => {
  it('is refused 400 saying what is refused, not as invalid JSON', async () => {
    current = await buildTestApp();
    for (const extra of ['"__proto__": {"polluted": true}', '"constructor": {"prototype": {"polluted": true}}']) {
      const payload = `${JSON.stringify(validRequest).slice(0, -1)}, ${extra}}`;
      const answer = await current.app.inject({
        method: 'POST',
        url: '/v1/predict',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expect(answer.statusCode, extra).toBe(400);
      expect(answer.json(), extra).toEqual({
        code: 'BAD_REQUEST',
        message: 'a body may not hold a "__proto__" key, nor a "constructor" key holding "prototype"',
      });
    }
    const invalid = await current.app.inject({
      method: 'POST',
      url: '/v1/predict',
      headers: { 'content-type': 'application/json' },
      payload: '{',
    });
    expect(invalid.json()).toEqual({
      code: 'BAD_REQUEST',
      message: "Body is not valid JSON but content-type is set to 'application/json'",
    });
  });
});

describe('a replica shutting down', () => {
  it('answers a request 503 SHUTTING_DOWN with Retry-After while the requests in flight finish, counted neither as shed nor as a server error', async () => {
    current = await buildTestApp();
    const { registry } = current;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    current.app.addHook('onClose', () => held);
    const closing = current.app.close();
    const answer = await current.app.inject({ method: 'POST', url: '/v1/predict', payload: validRequest });
    release();
    await closing;
    current = undefined;
    expect(answer.statusCode).toBe(503);
    expect(answer.headers['retry-after']).toBe('1');
    expect(answer.json()).toEqual({ code: 'SHUTTING_DOWN', message: 'this replica is shutting down; retry, another replica will answer' });
    const text = await registry.metrics();
    expect(text).toContain('tributary_requests_shed_total{reason="event_loop_delay"} 0');
    expect(text).toContain('tributary_requests_shed_total{reason="model_queue_full"} 0');
    expect(text).not.toMatch(/^tributary_http_server_errors_total\{code="(SHUTTING_DOWN|OVERLOADED)"\}/m);
    expect(text).not.toMatch(/^tributary_http_server_errors_total\{.*\} [1-9]/m);
  });
});
