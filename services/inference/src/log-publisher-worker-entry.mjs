// Worker threads do not inherit the TypeScript loader of the main thread on Node 20:
// register it here, then load the worker's module.
import { register } from 'tsx/esm/api';

register();
const worker = await import('./log-publisher-worker.ts');
export default worker.default;
