/**
 * The Dockerfile, linted without a Docker engine. hadolint is neither in Debian nor on npm,
 * so this is the documented equivalent: dockerfile-utils' validator (the Dockerfile language
 * server's: syntax, flags, ports, duplicate CMD/HEALTHCHECK, instruction casing), then the
 * hadolint rules that apply to this file (named by their codes) and the project's own:
 * a production stage with NODE_ENV=production, a non-root user, a health check, pinned base
 * images, dependencies installed with `npm ci --omit=dev --ignore-scripts`, and no
 * devDependency imported by any file that stage runs.
 */
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { builtinModules } from 'node:module';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { DockerfileParser, type Copy, type Healthcheck, type Instruction } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { serviceNodeFlags } from '../../../test/support/service-flags.js';
import { composeFile, read, ROOT, serviceEntries } from './deployment.js';

const text = read('Dockerfile');
const dockerfile = DockerfileParser.parse(text);

interface Stage {
  name: string;
  base: string;
  instructions: Instruction[];
}

/** Build arguments declared before the first FROM, with their defaults. */
const initialArgs = new Map(dockerfile.getInitialARGs().map((a) => [a.getProperty()?.getName() ?? '', a.getProperty()?.getValue() ?? '']));

const stages: Stage[] = [];
for (const instruction of dockerfile.getInstructions()) {
  const keyword = instruction.getKeyword();
  if (keyword === 'FROM') {
    const [image = '', as, name] = instruction.getArguments().map((a) => a.getValue());
    const base = image.replace(
      /\$\{(\w+)\}|\$(\w+)/g,
      (_m, a: string | undefined, b: string | undefined) => initialArgs.get(a ?? b ?? '') ?? '',
    );
    stages.push({ name: as?.toUpperCase() === 'AS' ? (name ?? '') : String(stages.length), base, instructions: [] });
  } else if (stages.length > 0) stages.at(-1)!.instructions.push(instruction);
}
const stageNames = new Set(stages.map((s) => s.name));
const runtime = stages.at(-1)!;
const of = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.getKeyword() === keyword);
const content = (i: Instruction) => i.getArgumentsContent() ?? '';
const stage = (name: string) => stages.find((s) => s.name === name)!;

describe('Dockerfile lint', () => {
  it('has no problem that the Dockerfile language server reports (dockerfile-utils)', () => {
    const problems = validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`);
    expect(problems).toEqual([]);
  });

  it('DL3006, DL3007: every external base image is pinned to a release, never latest', () => {
    const external = stages.filter((s) => !stageNames.has(s.base));
    expect(external.length).toBeGreaterThan(0);
    for (const s of external) {
      expect(s.base, `stage ${s.name}`).toMatch(/^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$/);
      expect(s.base).not.toMatch(/:latest\b/);
    }
  });

  it('DL3002: the image runs as an unprivileged user', () => {
    const users = of(runtime, 'USER').map(content);
    expect(users.length).toBeGreaterThan(0);
    expect(users.at(-1)).not.toMatch(/^(root|0)(:|$)/);
  });

  it('DL3025: CMD, ENTRYPOINT and the health check use the exec (JSON) form, so that signals reach the process', () => {
    for (const s of stages)
      for (const i of [...of(s, 'CMD'), ...of(s, 'ENTRYPOINT')]) expect(content(i), `${s.name} ${i.getKeyword()}`).toMatch(/^\[/);
    for (const i of of(runtime, 'HEALTHCHECK')) expect(content(i)).toMatch(/^(--\S+\s+)*CMD\s+\[/);
  });

  it('DL3020: COPY, never ADD; DL3000: absolute WORKDIR; DL4006: pipes in RUN fail on any stage', () => {
    for (const s of stages) {
      expect(of(s, 'ADD'), s.name).toEqual([]);
      for (const w of of(s, 'WORKDIR')) expect(content(w)).toMatch(/^\//);
      for (const r of of(s, 'RUN')) if (/[^|]\|[^|]/.test(content(r))) expect(content(r)).toMatch(/set -o pipefail|set -\w*o pipefail/);
    }
  });

  it('the production stage is the last one, with NODE_ENV=production and a health check on /healthz', () => {
    const env = new Map(
      of(runtime, 'ENV').flatMap((e) =>
        content(e)
          .split(/\s+\\?\s*/)
          .map((kv) => kv.split('=') as [string, string]),
      ),
    );
    expect(env.get('NODE_ENV')).toBe('production');
    const healthchecks = of(runtime, 'HEALTHCHECK');
    expect(healthchecks).toHaveLength(1);
    const flags = (healthchecks[0] as Healthcheck).getFlags().map((f) => f.getName());
    expect(flags).toEqual(expect.arrayContaining(['interval', 'timeout', 'start-period', 'retries']));
    expect(content(healthchecks[0]!)).toContain('/healthz');
  });

  it("the health check's default ports are the services' own", () => {
    const defaults = /const d=\{([^}]*)\}/.exec(content(of(runtime, 'HEALTHCHECK')[0]!))?.[1] ?? '';
    const table = new Map(defaults.split(',').map((kv) => kv.split(':') as [string, string]));
    for (const entry of serviceEntries().values()) {
      if (!entry.http) continue;
      expect(Number(table.get(entry.name) ?? 3000), entry.name).toBe(entry.defaultPort);
    }
  });

  it('the health check passes for a service without HTTP, and asks /healthz of the others', async () => {
    const [command, flag, script] = JSON.parse(/CMD\s+(\[[\s\S]*\])\s*$/.exec(content(of(runtime, 'HEALTHCHECK')[0]!))![1]!) as string[];
    expect([command, flag]).toEqual(['node', '-e']);
    const check = (env: Record<string, string>) =>
      new Promise<number | null>((done) => execFile(process.execPath, ['-e', script!], { env }).once('exit', done));
    for (const entry of serviceEntries().values())
      if (entry.runnable && !entry.http) expect(await check({ SERVICE: entry.name }), entry.name).toBe(0);
    const server = createServer((request, response) => response.writeHead(request.url === '/healthz' ? 200 : 404).end());
    await new Promise<void>((listening) => server.listen(0, '127.0.0.1', listening));
    const port = String((server.address() as AddressInfo).port);
    try {
      expect(await check({ SERVICE: 'inference', PORT: port })).toBe(0);
    } finally {
      await new Promise((closed) => server.close(closed));
    }
    // Nothing answers there any more: unhealthy.
    expect(await check({ SERVICE: 'inference', PORT: port })).toBe(1);
  });

  it('installs production dependencies only, with no install script (nothing downloaded beyond npm)', () => {
    const copiesFrom = (s: Stage) => of(s, 'COPY').map((c) => (c as Copy).getFromFlag()?.getValue() ?? null);
    const from = copiesFrom(runtime).filter((f): f is string => f !== null);
    // node_modules reach the runtime from the prod-deps stage only.
    const installers = from.filter((name) => of(stage(name), 'RUN').some((r) => /\bnpm (ci|install)\b/.test(content(r))));
    expect(installers).toEqual(['prod-deps']);
    const install = of(stage('prod-deps'), 'RUN').map(content).join('\n');
    expect(install).toMatch(/npm ci --omit=dev --ignore-scripts/);
    // The runtime installs nothing itself.
    expect(of(runtime, 'RUN').map(content).join('\n')).not.toMatch(/\bnpm\b/);
    // The sources copied into the runtime come without their tests.
    const sources = of(stage('sources'), 'RUN').map(content).join('\n');
    expect(sources).toMatch(/-name test -type d/);
    expect(sources).toMatch(/-name '\*\.test\.ts'/);
  });

  it('runs the service chosen by SERVICE with node and tsx, and every SERVICE compose builds exists', () => {
    const cmd = content(of(runtime, 'CMD')[0]!);
    expect(cmd).toContain('exec node $flags --import tsx src/main.ts');
    expect(cmd).toContain('cd \\"services/$SERVICE\\"');
    const services = serviceEntries();
    const defaultService = of(runtime, 'ARG')
      .map(content)
      .find((a) => a.startsWith('SERVICE='))
      ?.slice('SERVICE='.length);
    expect(services.get(defaultService ?? '')?.runnable).toBe(true);
    for (const [name, s] of Object.entries(composeFile().services)) {
      const service = s.build?.args?.SERVICE;
      if (service !== undefined) expect(services.get(service)?.runnable, `${name}: SERVICE=${service}`).toBe(true);
    }
  });

  it('gives each service the node flags of its `npm start` (a stand-in node on PATH prints what it was run with)', async () => {
    const [shell, flag, script] = JSON.parse(content(of(runtime, 'CMD')[0]!)) as string[];
    expect([shell, flag]).toEqual(['sh', '-c']);
    const bin = mkdtempSync(join(tmpdir(), 'tributary-cmd-'));
    writeFileSync(join(bin, 'node'), '#!/bin/sh\necho "$PWD|$*"\n', { mode: 0o755 });
    const run = (service: string) =>
      new Promise<string>((done, fail) =>
        execFile('sh', ['-c', script!], { cwd: ROOT, env: { PATH: `${bin}:${process.env.PATH}`, SERVICE: service } }, (error, stdout) =>
          error ? fail(error) : done(stdout.trim()),
        ),
      );
    const runnable = [...serviceEntries().values()].filter((s) => s.runnable);
    expect(runnable.length).toBeGreaterThan(4);
    for (const { name } of runnable) {
      const flags = serviceNodeFlags(name);
      expect(await run(name), name).toBe(`${join(ROOT, 'services', name)}|${[...flags, '--import tsx src/main.ts'].join(' ')}`);
    }
    expect(await run('features')).toContain('--max-semi-space-size=64 --import tsx');
    rmSync(bin, { recursive: true });
  });

  it('.dockerignore keeps installed dependencies, git history and secrets out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const pattern of ['**/node_modules', '.git', '**/.env', '**/.env.*']) expect(ignored).toContain(pattern);
  });
});

describe('the production image needs no devDependency', () => {
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { dev?: boolean; link?: boolean }> };
  const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

  /** The files the runtime stage copies and runs: shared/src and services/\*\/src, without tests. */
  function runtimeFiles(): string[] {
    const dirs = [join(ROOT, 'shared/src'), ...[...serviceEntries().keys()].map((s) => join(ROOT, 'services', s, 'src'))];
    return dirs.flatMap((dir) =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && /\.(ts|mts|mjs|js)$/.test(e.name) && !/\.test\.ts$/.test(e.name))
        .filter((e) => !e.parentPath.split('/').includes('test'))
        .map((e) => join(e.parentPath, e.name)),
    );
  }

  /** Package names a file imports at run time (type-only imports are erased). */
  function imported(source: string): string[] {
    const specifiers = [
      ...[...source.matchAll(/\b(?:import|export)\s+(type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]/g)]
        .filter((m) => m[1] === undefined)
        .map((m) => m[2]!),
      ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
    ];
    return specifiers
      .filter((s) => !s.startsWith('.') && !s.startsWith('/') && !builtins.has(s))
      .map((s) => (s.startsWith('@') ? s.split('/').slice(0, 2).join('/') : s.split('/')[0]!));
  }

  it('every package imported by the sources the image runs is installed by `npm ci --omit=dev`', () => {
    const files = runtimeFiles();
    expect(files.length).toBeGreaterThan(50);
    const problems: string[] = [];
    const seen = new Set<string>();
    for (const file of files) {
      for (const name of imported(read(relative(ROOT, file)))) {
        seen.add(name);
        const entry = lock.packages[`node_modules/${name}`];
        if (entry === undefined) problems.push(`${relative(ROOT, file)}: ${name} is not in package-lock.json`);
        else if (entry.dev === true) problems.push(`${relative(ROOT, file)}: ${name} is a devDependency only`);
      }
    }
    expect(problems).toEqual([]);
    // The scan sees the packages it must: the runtime ones, and tsx (worker entries).
    for (const name of ['kafkajs', 'ioredis', 'onnxruntime-node', 'fastify', 'tsx']) expect(seen, name).toContain(name);
    // `node --import tsx` in the CMD.
    expect(lock.packages['node_modules/tsx']?.dev).not.toBe(true);
  });
});
