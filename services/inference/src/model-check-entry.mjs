// Worker threads do not inherit the TypeScript loader of the main thread on Node 20:
// register it here, then load the worker's module.
import { register } from 'tsx/esm/api';

register();
const check = await import('./model-check.ts');
export default check.default;
