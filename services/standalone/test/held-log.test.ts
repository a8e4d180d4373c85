/** The log lines of `npm start` before its listening line wait for it, but for warnings and errors. */
import { describe, expect, it } from 'vitest';
import { heldLog } from '../src/held-log.js';

describe('the log of npm start before its listening line', () => {
  it('holds info lines until released, writes warnings and errors at once, then everything in order', () => {
    const written: string[] = [];
    const log = heldLog({ write: (text) => written.push(text) });
    log.write('{"level":30,"msg":"model loaded"}\n');
    log.write('{"level":40,"msg":"Redis does not answer"}\n');
    log.write('{"level":20,"msg":"detail"}\n');
    expect(written).toEqual(['{"level":40,"msg":"Redis does not answer"}\n']);
    written.push('Tributary is listening on …\n');
    log.release();
    log.write('{"level":30,"msg":"ready"}\n');
    expect(written).toEqual([
      '{"level":40,"msg":"Redis does not answer"}\n',
      'Tributary is listening on …\n',
      '{"level":30,"msg":"model loaded"}\n',
      '{"level":20,"msg":"detail"}\n',
      '{"level":30,"msg":"ready"}\n',
    ]);
  });
});
