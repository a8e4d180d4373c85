import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { Stopping, stopSignal } from '../src/stopping.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

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

  it('keeps nothing of a settled wait while the consumer runs (each batch waits through it)', async () => {
    const signal = stopSignal();
    const refs: WeakRef<object>[] = [];
    const waitFor = async (i: number) => {
      const batch = { records: new Array(100).fill(i) };
      refs.push(new WeakRef(batch));
      await signal.until(Promise.resolve(batch));
    };
    for (let i = 0; i < 100; i++) await waitFor(i);
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    expect(refs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    expect(signal.stopped).toBe(false);
  });
});
