/**
 * The order of the test files: the unit project first, then the integration project with the
 * multi-process tests (the crash test above all) last. In CI the fault-injection suite runs
 * beside `npm test` for its first few minutes, and on two cores a test that runs several
 * processes of its own is slowed most by it: run alone, the crash test took 78-84 s; in a CI run
 * that started with it, 253 s. Within that rule, vitest's own order (failed first, then the
 * longest) holds.
 */
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/** Run last, in this order: they start several processes (pipelines, services, Prometheus). */
const HEAVY = ['retrain-scenario.int.test.ts', 'prometheus.int.test.ts', 'crash.int.test.ts'];

const weight = (file: TestSpecification): number => {
  const projectOrder = file.project.name === 'unit' ? 0 : 1;
  const heavy = HEAVY.findIndex((name) => file.moduleId.endsWith(`/${name}`));
  return projectOrder * 10 + (heavy + 1);
};

export class UnitFirstHeavyLast extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    // Array.prototype.sort is stable: vitest's order holds between files of one weight.
    return (await super.sort(files)).sort((a, b) => weight(a) - weight(b));
  }
}
