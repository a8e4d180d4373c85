/** Writes docs/configuration.md from the declared configuration variables. */
import { writeFileSync } from 'node:fs';
import { configurationReference } from '../shared/src/config-reference.js';

writeFileSync(new URL('../docs/configuration.md', import.meta.url), configurationReference());
console.log('wrote docs/configuration.md');
