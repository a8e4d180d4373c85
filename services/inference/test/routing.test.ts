import { MemoryRoutingStore } from '../src/registry/routing.js';
import { routingStoreContract } from './routing.contract.js';

routingStoreContract('memory', async () => new MemoryRoutingStore());
