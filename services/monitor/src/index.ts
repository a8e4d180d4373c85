export { startMonitor, type Monitor, type MonitorOptions } from './monitor.js';
export { createJoinStore, monitorSettings, thresholdsFrom } from './connections.js';
export { MemoryJoinStore, RedisJoinStore, type JoinStore } from './join-store.js';
