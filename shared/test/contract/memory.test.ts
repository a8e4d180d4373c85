import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { MemoryEventLog } from '../../src/event-log/memory.js';
import { MemoryOnlineStore } from '../../src/online-store/memory.js';

onlineStoreContract('in-memory', async () => new MemoryOnlineStore());
eventLogContract('in-memory', async () => new MemoryEventLog(), { timeoutMs: 5_000 });
