import v8 from 'node:v8';
import vm from 'node:vm';
import { describe, expect, it } from 'vitest';
import { giveUpSignal } from '../src/within.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('giveUpSignal', () => {
  it('settles as the work does until given up', async () => {
    const signal = giveUpSignal();
    await expect(signal.until(Promise.resolve(7))).resolves.toBe(7);
    await expect(signal.until(Promise.reject(new Error('store down')))).rejects.toThrow('store down');
    expect(signal.reason).toBeUndefined();
  });

  it("fails the pending and the later ones with the reason, telling each one's cancel", async () => {
    const signal = giveUpSignal();
    const cancelled: string[] = [];
    const pending = signal.until(new Promise(() => {}), (reason) => cancelled.push(`first: ${reason.message}`));
    const settled = signal.until(Promise.resolve(1), () => cancelled.push('settled'));
    await expect(settled).resolves.toBe(1);
    const reason = new Error('past the deadline');
    signal.giveUp(reason);
    signal.giveUp(new Error('a second time'));
    expect(signal.reason).toBe(reason);
    await expect(pending).rejects.toBe(reason);
    await expect(signal.until(Promise.resolve(2), (r) => cancelled.push(`later: ${r.message}`))).rejects.toBe(reason);
    // A failure of work given after the give-up is not an unhandled rejection.
    await expect(signal.until(Promise.reject(new Error('late')))).rejects.toBe(reason);
    expect(cancelled).toEqual(['first: past the deadline', 'later: past the deadline']);
  });

  it('keeps nothing of a settled wait', async () => {
    const signal = giveUpSignal();
    const refs: WeakRef<object>[] = [];
    const waitFor = async (i: number) => {
      const batch = { records: new Array(100).fill(i) };
      refs.push(new WeakRef(batch));
      await signal.until(Promise.resolve(batch), () => batch);
    };
    for (let i = 0; i < 100; i++) await waitFor(i);
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
    expect(refs.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
    expect(signal.reason).toBeUndefined();
  });
});
