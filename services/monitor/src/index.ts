export { startMonitor, type Monitor, type MonitorOptions } from './monitor.js';
