import { describe, expect, it } from 'vitest';
import { Stopping, stopSignal } from '../src/stopping.js';

/** A giveUpSignal (shared/test/give-up-signal.test.ts) whose reason is Stopping. */
describe('stopSignal', () => {
  it('settles as the work does while the consumer runs', async () => {
    const signal = stopSignal();
    await expect(signal.until(Promise.resolve(7))).resolves.toBe(7);
    await expect(signal.until(Promise.reject(new Error('store down')))).rejects.toThrow('store down');
    expect(signal.stopped).toBe(false);
  });

  it('fails the pending and the later ones with Stopping once stopped; the work goes on unheard', async () => {
    const signal = stopSignal();
    let finish!: (value: number) => void;
    const work = new Promise<number>((resolve) => (finish = resolve));
    const pending = signal.until(work);
    signal.stop();
    expect(signal.stopped).toBe(true);
    await expect(pending).rejects.toBeInstanceOf(Stopping);
    finish(1);
    await expect(signal.until(Promise.resolve(2))).rejects.toBeInstanceOf(Stopping);
    // A failure of work given after the stop is not an unhandled rejection.
    await expect(signal.until(Promise.reject(new Error('late')))).rejects.toBeInstanceOf(Stopping);
  });
});
