/**
 * batch-predict --online reads the features from the live online store on Redis; scores
 * it gives equal those of the point-in-time mode asked for the same instant, on the events
 * the pipeline's processor wrote to that store.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createFeatureProcessor } from '@tributary/features';
import { createRandom, fraud, RedisOnlineStore, type LogRecord } from '@tributary/shared';
import { realServices } from '../../../test/integration/services.js';
import { deletingKeysOnClose } from '../../../test/support/redis-cleanup.js';
import { uniqueName } from '../../../test/support/wait-for.js';
import { runTrainerCli } from './cli.js';

const services = realServices();
const MODEL_DIR = new URL('../../../models/fraud_detector/1', import.meta.url).pathname;

describe.skipIf(!services.redisUrl)(
  `batch-predict on the live store${services.redisUrl ? '' : ` (skipped: ${services.missing('redis')})`}`,
  () => {
    const prefix = `${uniqueName('trainer')}:`;
    const cleanups: (() => Promise<unknown>)[] = [];
    afterAll(async () => {
      for (const cleanup of cleanups.reverse()) await cleanup();
    });

    it('scores as the point-in-time mode does at the instant it read the store', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'tributary-batch-online-'));
      cleanups.push(() => rm(dir, { recursive: true, force: true }));
      const store = deletingKeysOnClose(new RedisOnlineStore({ url: services.redisUrl!, keyPrefix: prefix }), services.redisUrl!, prefix);
      cleanups.push(() => store.close());
      const example = fraud.fraudExample();
      const source = example.sources[0]!;
      const processor = createFeatureProcessor({ store, groups: example.groups, source, allowedLatenessMs: 300_000 });
      processor.open(source.topic, 0, -Infinity);
      const random = createRandom(5);
      const start = Date.now() - 2 * 3_600_000;
      const transactions: fraud.Transaction[] = Array.from({ length: 50 }, (_, i) => ({
        event_id: `t${i}`,
        user_id: `u${random.int(3)}`,
        merchant_id: `m${random.int(2)}`,
        amount: Math.round(random.next() * 20_000) / 100,
        currency: 'EUR',
        country: random.next() < 0.7 ? 'FR' : 'DE',
        channel: 'pos',
        ts: start + i * 2 * 60_000,
      }));
      const records: LogRecord[] = transactions.map((t, i) => ({
        topic: source.topic,
        partition: 0,
        offset: String(i),
        key: t.user_id,
        value: Buffer.from(JSON.stringify(t)),
        timestamp: t.ts as number,
        headers: {},
      }));
      await processor.process({ topic: source.topic, partition: 0, records });
      await processor.flush();
      await writeFile(join(dir, 'events.ndjson'), transactions.map((t) => `${JSON.stringify(t)}\n`).join(''));
      const requests = ['u0', 'u1', 'u2'].map((user, i) => ({
        request_id: `r${i}`,
        entities: { user_id: user, merchant_id: `m${i % 2}` },
        features: { amount: 100 + 50 * i, country: 'DE', channel: 'web' },
      }));
      await writeFile(join(dir, 'requests.ndjson'), requests.map((r) => `${JSON.stringify(r)}\n`).join(''));

      const online = await runTrainerCli('batch-predict-cli.ts', ['--model', MODEL_DIR, '--requests', 'requests.ndjson', '--online'], {
        cwd: dir,
        env: { REDIS_URL: services.redisUrl!, REDIS_KEY_PREFIX: prefix },
      });
      expect(online.stderr).toContain('scored 3 request(s)');
      expect(online.code).toBe(0);
      const live = online.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { request_id: string; score: number; at: number });
      // The same requests, asked for the instant the live run read the store, replayed from the events.
      await writeFile(join(dir, 'at.ndjson'), requests.map((r, i) => `${JSON.stringify({ ...r, at: live[i]!.at })}\n`).join(''));
      const replayed = await runTrainerCli(
        'batch-predict-cli.ts',
        ['--model', MODEL_DIR, '--requests', 'at.ndjson', '--events', 'events.ndjson'],
        {
          cwd: dir,
        },
      );
      expect(replayed.code).toBe(0);
      const pit = replayed.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { request_id: string; score: number });
      live.forEach((l, i) => {
        expect(pit[i]!.request_id).toBe(l.request_id);
        expect(Math.abs(pit[i]!.score - l.score)).toBeLessThan(1e-6);
      });
      // The stored features count: without their events (one event of another card holder and merchant), the scores differ.
      await writeFile(
        join(dir, 'none.ndjson'),
        `${JSON.stringify({ ...transactions[0]!, event_id: 'other', user_id: 'u9', merchant_id: 'm9' })}\n`,
      );
      const empty = await runTrainerCli(
        'batch-predict-cli.ts',
        ['--model', MODEL_DIR, '--requests', 'at.ndjson', '--events', 'none.ndjson'],
        { cwd: dir },
      );
      const defaults = empty.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { score: number });
      expect(defaults.some((d, i) => Math.abs(d.score - live[i]!.score) > 1e-6)).toBe(true);
    }, 120_000);
  },
);
