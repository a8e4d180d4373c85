/** The configuration reference (docs/configuration.md), generated from the declared variables. */
import { SERVICE_DEFAULTS, VARIABLES } from './config.js';

export function configurationReference(): string {
  const rows = Object.entries(VARIABLES).map(([name, variable]) => {
    // The bundled registry's path is this checkout's: shown as where it is in any installation.
    const fallback =
      variable.default === undefined ? '(unset)' : name === 'MODEL_REGISTRY_DIR' ? '`<install>/models`' : `\`${variable.default}\``;
    // A default that differs by service is given for each of them.
    const byService = Object.entries(SERVICE_DEFAULTS).flatMap(([service, defaults]) => {
      const own = defaults[name as keyof typeof VARIABLES];
      return own === undefined ? [] : [`${service} \`${own}\``];
    });
    const shown = byService.length > 0 ? `${fallback} (${byService.join(', ')})` : fallback;
    return `| \`${name}\` | ${shown} | ${variable.description.replaceAll('|', '\\|')} |`;
  });
  return [
    '# Configuration reference',
    '',
    'Every service reads its configuration once, at start-up, from these environment variables. An invalid',
    'value stops the process with a message naming the variable and what it expects. This file is generated',
    'from `shared/src/config.ts` by `npm run docs:config`; a test fails when it is out of date.',
    '',
    'Durations are a whole number and a unit: `ms`, `s`, `m`, `h` or `d` (`250ms`, `10s`, `7d`). Those that',
    'set a timer go up to `24d`: a Node.js timer fires after 1 ms instead of a delay over 2^31-1 ms (~24.8 days).',
    'A number or a duration outside the range its meaning ends with is refused. In a comma-separated list',
    'blanks around an item are ignored and an empty item (`a,,b`, a trailing comma) is refused.',
    '',
    '| variable | default | meaning |',
    '| --- | --- | --- |',
    ...rows,
    '',
  ].join('\n');
}
