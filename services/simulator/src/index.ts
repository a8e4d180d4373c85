export { createTransactionGenerator, type SimulatedTransaction, type GeneratorOptions } from './generator.js';
export { startSimulator, type Simulator, type SimulatorOptions, type SimulatorStats } from './simulator.js';
