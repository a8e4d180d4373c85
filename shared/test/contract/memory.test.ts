import { eventLogContract } from '../../../test/contract/event-log.contract.js';
import { onlineStoreContract } from '../../../test/contract/online-store.contract.js';
import { MemoryEventLog } from '../../src/event-log/memory.js';
import { MemoryOnlineStore } from '../../src/online-store/memory.js';

onlineStoreContract('in-memory', async () => new MemoryOnlineStore());
eventLogContract('in-memory', async () => new MemoryEventLog(), { timeoutMs: 5_000 });
// As `npm start` creates it: records every group has committed past are let go; the contract holds the same.
eventLogContract('in-memory, releasing committed records', async () => new MemoryEventLog({ releaseCommitted: true }), {
  timeoutMs: 5_000,
});
