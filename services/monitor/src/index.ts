export { startMonitor, type Monitor, type MonitorOptions } from './monitor.js';
export { createJoinStore, monitorSettings, manifestsFrom } from './connections.js';
export { MemoryJoinStore, RedisJoinStore, type JoinStore } from './join-store.js';
