import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  createLogger,
  createRegistry,
  loadConfig,
  MemoryEventLog,
  MemoryOnlineStore,
  type SubscribeOptions,
  type Subscription,
} from '@tributary/shared';
import { startFeatureService } from '../src/service.js';

/** An event log whose subscriptions wait for a gate, or fail there; it records the groups asked for and stopped. */
class GatedEventLog extends MemoryEventLog {
  readonly asked: string[] = [];
  readonly stopped: string[] = [];
  constructor(private readonly gate: (groupId: string, asked: string[]) => Promise<void>) {
    super();
  }
  override async subscribe(options: SubscribeOptions): Promise<Subscription> {
    this.asked.push(options.groupId);
    await this.gate(options.groupId, this.asked);
    const subscription = await super.subscribe(options);
    return {
      ...subscription,
      stop: async () => {
        this.stopped.push(options.groupId);
        await subscription.stop();
      },
    };
  }
}

const config = loadConfig({ LOG_LEVEL: 'silent', CONSUMER_GROUP_PREFIX: 'test' });
const groups = ['test-features-transactions', 'test-features-labelled_transactions', 'test-label-join'];

function start(eventLog: MemoryEventLog) {
  return startFeatureService(config, {
    eventLog,
    store: new MemoryOnlineStore(),
    registry: createRegistry({ defaultMetrics: false }),
    logger: createLogger('test', 'silent'),
  });
}

describe('feature service start', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("joins every consumer group at once (after a crash each join waits for the dead member's session)", async () => {
    let allAsked!: () => void;
    const asked = new Promise<void>((resolve) => (allAsked = resolve));
    // Each subscription answers only once all were asked for: one after the other, the service would never start.
    const eventLog = new GatedEventLog(async (_group, all) => {
      if (all.length === groups.length) allAsked();
      await asked;
    });
    const service = await start(eventLog);
    expect([...eventLog.asked].sort()).toEqual([...groups].sort());
    await service.stop();
  }, 5_000);

  it('stops the consumers that started when another fails to, and fails with its error', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const eventLog = new GatedEventLog(async (group) => {
      // The failure comes after the others have subscribed.
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (group === 'test-label-join') throw new Error('group coordinator not available');
    });
    await expect(start(eventLog)).rejects.toThrow('group coordinator not available');
    expect([...eventLog.stopped].sort()).toEqual(groups.filter((g) => g !== 'test-label-join').sort());
    // Nothing left running: neither the pipeline's flush nor any consumer's lag refresh.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('stops the label join and the other source when one source of the pipeline fails to start', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const eventLog = new GatedEventLog(async (group) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      if (group === 'test-features-labelled_transactions') throw new Error('not authorized to access group');
    });
    await expect(start(eventLog)).rejects.toThrow('not authorized to access group');
    expect([...eventLog.stopped].sort()).toEqual(['test-features-transactions', 'test-label-join']);
    expect(vi.getTimerCount()).toBe(0);
  });
});
