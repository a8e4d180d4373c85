/**
 * The registry CLI's command line, checked whole before anything is read or changed: each
 * command takes its own arguments and options, and one it does not take (an extra argument,
 * `--percent` on an A/B rollout, an option given twice) is refused as bad usage rather than
 * left unused.
 */
import { parseArgs } from 'node:util';
import { auditTextProblem, REASON_MAX_LENGTH, repeatedOption, UsageError } from '@tributary/shared';
import type { RolloutPolicy } from './registry/rollout.js';

export type Command =
  | { name: 'help' }
  | { name: 'list' }
  | { name: 'register'; folder: string }
  | { name: 'promote'; version: string; reason: string }
  | { name: 'rollback'; reason: string }
  /** `shadows` undefined: the current shadows stay (but a version the policy routes to); [] (`--no-shadows`): none. */
  | { name: 'rollout'; policy: RolloutPolicy; shadows: string[] | undefined; reason: string }
  | { name: 'audit'; limit: number };

export interface CommandLine {
  command: Command;
  /** `--model`; without it, the configured one. */
  model?: string;
  /** `--by`; without it, the user at this host. */
  by?: string;
}

const OPTIONS = {
  model: { type: 'string' },
  reason: { type: 'string' },
  by: { type: 'string' },
  limit: { type: 'string' },
  percent: { type: 'string' },
  entity: { type: 'string' },
  shadow: { type: 'string' },
  'no-shadows': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Option = Exclude<keyof typeof OPTIONS, 'help'>;

const CHANGES = ['promote', 'rollback', 'rollout'];

/** The commands (or rollout policies, as `rollout canary`) each option is for, and how that is said. */
const OPTION_USE: Record<Option, { for: string[]; said: string }> = {
  model: { for: ['list', 'audit', ...CHANGES], said: "list, audit, promote, rollback and rollout (register takes the manifest's name)" },
  reason: { for: CHANGES, said: 'promote, rollback and rollout' },
  by: { for: CHANGES, said: 'promote, rollback and rollout' },
  limit: { for: ['audit'], said: 'audit' },
  shadow: { for: ['rollout'], said: 'rollout' },
  'no-shadows': { for: ['rollout'], said: 'rollout' },
  percent: { for: ['rollout canary'], said: 'rollout canary' },
  entity: { for: ['rollout ab'], said: 'rollout ab' },
};

/** A comma-separated list of versions (or A/B arms): at least one, no empty item. */
function list(text: string | undefined, what: string): string[] {
  const items = (text ?? '').split(',').map((v) => v.trim());
  if (items.every((v) => v === '')) throw new UsageError(`${what} needs a comma-separated list of versions`);
  if (items.includes('')) throw new UsageError(`${what}: an empty item in "${text}"`);
  return items;
}

type PolicyKind = RolloutPolicy['kind'];

function parsePolicy(kind: PolicyKind, argument: string | undefined, values: { percent?: string; entity?: string }): RolloutPolicy {
  switch (kind) {
    case 'champion':
      return { kind: 'champion' };
    case 'canary': {
      const percent = Number(values.percent);
      if (values.percent === undefined || !Number.isFinite(percent) || percent <= 0 || percent >= 100)
        throw new UsageError('rollout canary needs --percent <more than 0, less than 100>');
      return { kind: 'canary', version: argument!, percent };
    }
    case 'ab': {
      const arms = list(argument, 'rollout ab').map((arm) => {
        // The weight is all after the first colon: `2:1:5` is no weight, not arm 2 of weight 1.
        const [, version, weight] = /^([^:]+):(.+)$/.exec(arm) ?? [];
        if (version === undefined || weight === undefined || weight.trim() === '' || !Number.isFinite(Number(weight)))
          throw new UsageError(`A/B arm "${arm}" must be <version>:<weight>`);
        return { version: version.trim(), weight: Number(weight) };
      });
      return { kind: 'ab', arms, ...(values.entity === undefined ? {} : { entity: values.entity }) };
    }
    case 'bandit':
      return { kind: 'bandit', versions: list(argument, 'rollout bandit') };
  }
}

/** The arguments each command takes after its name (a rollout's after its policy), named as a missing one is told. */
const ARGUMENTS: Record<string, string[]> = {
  list: [],
  register: ['register needs the folder of the version (manifest.json and the ONNX file)'],
  promote: ['promote needs the version'],
  rollback: [],
  audit: [],
  'rollout champion': [],
  'rollout canary': ['rollout canary needs the version'],
  'rollout ab': ['rollout ab needs a comma-separated list of versions'],
  'rollout bandit': ['rollout bandit needs a comma-separated list of versions'],
};

/** What an extra argument is told beside, where it may be a misunderstanding. */
const EXTRA_HINT: Record<string, string> = {
  rollback: ' (rollback returns to the previous champion; promote <version> serves a given one)',
};

/** Parses and checks a command line (the arguments after the script's name). */
export function parseCommandLine(argv: string[]): CommandLine {
  const { values, positionals, tokens } = parseArgs({ args: argv, allowPositionals: true, options: OPTIONS, tokens: true });
  if (values.help) return { command: { name: 'help' } };
  // A path, a name, a reason: none is this long (and onnxruntime, loaded to check versions, crashes on a command line of ~30,000 characters).
  const long = argv.findIndex((arg) => arg.length > 4096);
  if (long >= 0) throw new UsageError(`argument ${long + 1} is ${argv[long]!.length} characters long; at most 4096`);
  const twice = repeatedOption(tokens, OPTIONS);
  if (twice !== undefined) throw new UsageError(`--${twice} is given twice`);
  const [name, ...rest] = positionals;
  if (name === undefined) throw new UsageError('no command given');
  if (!['list', 'register', 'audit', ...CHANGES].includes(name)) throw new UsageError(`unknown command "${name}"`);
  const args = name === 'rollout' ? rest.slice(1) : rest;
  const policy = name === 'rollout' ? parsePolicyKind(rest[0]) : undefined;
  const usage = policy === undefined ? name : `rollout ${policy}`;
  const missing = ARGUMENTS[usage]!.find((_, i) => !args[i]?.trim());
  if (missing !== undefined) throw new UsageError(missing);
  const extra = args[ARGUMENTS[usage]!.length];
  if (extra !== undefined) throw new UsageError(`${usage}: unexpected argument "${extra}"${EXTRA_HINT[usage] ?? ''}`);
  for (const option of Object.keys(OPTION_USE) as Option[]) {
    const value = values[option];
    if (value === undefined) continue;
    const use = OPTION_USE[option];
    if (!use.for.includes(name) && !use.for.includes(usage)) throw new UsageError(`--${option} is only for ${use.said}`);
    if (typeof value === 'string' && value.trim() === '' && option !== 'reason') throw new UsageError(`--${option} must not be empty`);
  }
  for (const option of ['reason', 'by'] as const) {
    const problem = values[option] === undefined ? null : auditTextProblem(values[option], option === 'by' ? 200 : REASON_MAX_LENGTH);
    if (problem !== null) throw new UsageError(`--${option} ${problem} (kept in the audit log)`);
  }
  const reason = () => {
    if (!values.reason?.trim()) throw new UsageError(`${name} needs --reason "<why>" (kept in the audit log)`);
    return values.reason.trim();
  };
  const command = ((): Command => {
    switch (name) {
      case 'register':
        return { name, folder: args[0]! };
      case 'promote':
        return { name, version: args[0]!, reason: reason() };
      case 'rollback':
        return { name, reason: reason() };
      case 'rollout': {
        const chosen = parsePolicy(policy!, args[0], values);
        if (values.shadow !== undefined && values['no-shadows'])
          throw new UsageError('--shadow and --no-shadows together: name the shadows, or none');
        const shadows = values['no-shadows'] ? [] : values.shadow === undefined ? undefined : list(values.shadow, '--shadow');
        return { name, policy: chosen, shadows, reason: reason() };
      }
      case 'audit': {
        const limit = Number(values.limit ?? 20);
        if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new UsageError('--limit must be an integer between 1 and 1000');
        return { name, limit };
      }
      default:
        return { name: 'list' };
    }
  })();
  return { command, ...(values.model === undefined ? {} : { model: values.model }), ...(values.by === undefined ? {} : { by: values.by }) };
}

/** A rollout's policy name, checked (its own arguments and options are then checked against it). */
function parsePolicyKind(kind: string | undefined): PolicyKind {
  if (kind === 'champion' || kind === 'canary' || kind === 'ab' || kind === 'bandit') return kind;
  throw new UsageError(`rollout needs a policy: champion, canary, ab or bandit${kind ? ` (not "${kind}")` : ''}`);
}
