import { MemoryJoinStore } from '../src/join-store.js';
import { joinStoreContract } from './join-store.contract.js';

joinStoreContract('memory', async () => new MemoryJoinStore(60_000));
