/**
 * docker-compose.yml: valid for Compose (Debian's docker-compose validates without a Docker
 * engine; .ci/run installs it, and without it these checks fail when CI is set and are
 * skipped with the reason otherwise), and consistent with the services it runs: every
 * variable it sets is one the services read, with a value they accept; every port and
 * health check exists; dependencies wait on health checks and on the topic-creating init
 * step, never on sleeps; images are pinned; Prometheus and Grafana get the repository's
 * configuration.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { VARIABLES, loadConfig } from '../../src/config.js';
import { composeFile, environmentOf, read, ROOT, serviceEntries, tool, VARIABLE_NAMES, type ComposeService } from './deployment.js';

const compose = composeFile();
const services = serviceEntries();
const built = Object.entries(compose.services).filter(([, s]) => s.build !== undefined);

/** The project service a compose service runs: the image's SERVICE build argument. */
function projectService(name: string, service: ComposeService) {
  const entry = services.get(service.build?.args?.SERVICE ?? '');
  if (entry === undefined) throw new Error(`compose service ${name}: build argument SERVICE names no service with src/main.ts`);
  return entry;
}

const version = tool('docker-compose', ['version']);
const skip = version.missing && !process.env.CI;
if (skip)
  console.warn(
    'skipping `docker-compose config`: docker-compose is not on PATH (apt-get install -y docker-compose); with CI set it fails instead',
  );

describe.skipIf(skip)('docker-compose config', () => {
  it('accepts the file (schema, depends_on conditions, merge keys, interpolation)', () => {
    expect(version.missing, 'docker-compose is not on PATH: apt-get install -y docker-compose').toBe(false);
    const result = tool('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q']);
    expect(result.status, result.stderr).toBe(0);
  });

  it('resolves to the services this test reads', () => {
    const result = tool('docker-compose', ['-f', 'docker-compose.yml', 'config', '--services']);
    expect(result.status, result.stderr).toBe(0);
    expect(new Set(result.stdout.trim().split('\n'))).toEqual(new Set(Object.keys(compose.services)));
  });
});

describe('docker-compose.yml', () => {
  it('runs Kafka (KRaft), Redis, Prometheus, Grafana and the feature pipeline, inference, monitor and simulator', () => {
    const run = new Set(built.map(([name, s]) => projectService(name, s).name));
    expect(run).toEqual(new Set(['features', 'inference', 'monitor', 'simulator']));
    for (const name of ['kafka', 'kafka-init', 'redis', 'prometheus', 'grafana']) expect(compose.services, name).toHaveProperty(name);
    const kafka = environmentOf(compose.services.kafka!);
    expect(kafka.KAFKA_PROCESS_ROLES?.split(',')).toEqual(expect.arrayContaining(['broker', 'controller']));
    expect(kafka.KAFKA_PROCESS_ROLES, 'KRaft: no ZooKeeper').toBeDefined();
    expect(Object.keys(kafka).some((k) => k.includes('ZOOKEEPER'))).toBe(false);
  });

  it('builds every project service from the Dockerfile, each a service with an entry point', () => {
    for (const [name, service] of built) {
      expect(service.build?.context, name).toBe('.');
      expect(service.build?.dockerfile ?? 'Dockerfile', name).toBe('Dockerfile');
      expect(projectService(name, service).runnable, name).toBe(true);
    }
  });

  it('sets only variables the services read (shared/src/config.ts), with values they accept', () => {
    for (const [name, service] of built) {
      const env = environmentOf(service);
      const unknown = Object.keys(env).filter((k) => !VARIABLE_NAMES.has(k));
      expect(unknown, `${name}: variables no service reads`).toEqual([]);
      // The service's own parse: a value it would refuse at start fails here.
      expect(() => loadConfig(env), name).not.toThrow();
    }
  });

  it('gives each HTTP service a port, published and scraped, and none to the simulator, which serves no HTTP', () => {
    const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as {
      scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[];
    };
    const targets = new Set(prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets)));
    for (const [name, service] of built) {
      const entry = projectService(name, service);
      const env = environmentOf(service);
      if (!entry.http) {
        expect(env.PORT, `${name} listens on no port`).toBeUndefined();
        expect(service.ports ?? [], name).toEqual([]);
        continue;
      }
      const port = Number(env.PORT ?? entry.defaultPort);
      expect(port, `${name}: the service's own default port`).toBe(entry.defaultPort);
      expect(service.ports, `${name} is published on 127.0.0.1`).toContain(`127.0.0.1:${port}:${port}`);
      expect(targets, `prometheus.yml scrapes ${name}`).toContain(`${name}:${port}`);
    }
    for (const target of targets) {
      const [host] = target.split(':');
      if (host !== 'localhost') expect(compose.services, `prometheus.yml target ${target}`).toHaveProperty(host!);
    }
  });

  it('health-checks every HTTP service on /healthz through the image, and disables the check for the simulator', () => {
    const dockerfile = read('Dockerfile');
    const healthcheck = /^HEALTHCHECK .*\n(?:.*\\\n)*.*$/m.exec(dockerfile)?.[0] ?? '';
    expect(healthcheck).toContain('/healthz');
    for (const [name, service] of built) {
      const entry = projectService(name, service);
      if (entry.http) expect(service.healthcheck, `${name} keeps the image's HEALTHCHECK`).toBeUndefined();
      else expect(service.healthcheck, `${name} serves no /healthz`).toEqual({ disable: true });
    }
  });

  it('starts each service after what it needs is healthy (or, for the init step, done), never after a sleep', () => {
    const healthy = (name: string) => {
      const service = compose.services[name]!;
      if (service.healthcheck?.disable) return false;
      if (service.healthcheck?.test !== undefined) return true;
      return service.build !== undefined && projectService(name, service).http; // the image's HEALTHCHECK
    };
    for (const [name, service] of Object.entries(compose.services)) {
      const dependsOn = service.depends_on ?? {};
      expect(Array.isArray(dependsOn), `${name}: depends_on with conditions, not a bare list`).toBe(false);
      for (const [dependency, { condition }] of Object.entries(dependsOn as Record<string, { condition: string }>)) {
        expect(compose.services, `${name} depends on ${dependency}`).toHaveProperty(dependency);
        if (condition === 'service_healthy') expect(healthy(dependency), `${name} waits for ${dependency} to be healthy`).toBe(true);
        else expect(condition, `${name} -> ${dependency}`).toBe('service_completed_successfully');
        if (condition === 'service_completed_successfully') expect(compose.services[dependency]!.restart, dependency).toBe('no');
      }
      const script = [service.command, service.entrypoint].flat().join(' ');
      expect(script, `${name} waits by health checks, not sleeps`).not.toMatch(/\bsleep\b/);
    }
    for (const [name, service] of built) {
      const dependsOn = service.depends_on as Record<string, { condition: string }>;
      expect(dependsOn['kafka-init']?.condition, `${name} starts once the topics exist`).toBe('service_completed_successfully');
      expect(dependsOn.redis?.condition, name).toBe('service_healthy');
    }
    expect((compose.services['kafka-init']!.depends_on as Record<string, { condition: string }>).kafka?.condition).toBe('service_healthy');
    expect((compose.services.simulator!.depends_on as Record<string, { condition: string }>).inference?.condition).toBe('service_healthy');
  });

  it('creates every topic the services use with an explicit partition count, and no other topic appears by itself', () => {
    const init = [compose.services['kafka-init']!.command].flat().join('\n');
    const specs = new Map(
      [...(/for spec in ([^;]+);/.exec(init)?.[1] ?? '').matchAll(/([\w.-]+):(\d+)/g)].map((m) => [m[1]!, Number(m[2])]),
    );
    expect(init).toMatch(/kafka-topics\.sh .*--create/);
    expect(init).toMatch(/--partitions "\$\$partitions"/);
    const topics = Object.entries(VARIABLES)
      .filter(([name]) => name.startsWith('TOPIC_'))
      .map(([, v]) => v.default);
    expect([...specs.keys()].sort()).toEqual([...topics].sort());
    for (const [topic, partitions] of specs) expect(partitions, topic).toBeGreaterThan(0);
    // Both keyed by request_id, joined by the monitor.
    expect(specs.get('predictions')).toBe(specs.get('labels'));
    expect(environmentOf(compose.services.kafka!).KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe('false');
  });

  it('points the simulator at the inference service', () => {
    const simulator = environmentOf(compose.services.simulator!);
    const inference = compose.services.inference!;
    expect(simulator.INFERENCE_URL).toBe(`http://inference:${environmentOf(inference).PORT}`);
    expect(simulator.KAFKA_BROKERS).toBe('kafka:9092');
  });

  it('pins every image to a release', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      if (service.image === undefined) continue;
      const tag = /:([^:/@]+)(@sha256:[0-9a-f]{64})?$/.exec(service.image)?.[1];
      expect(tag, `${name}: ${service.image} has a tag`).toBeDefined();
      expect(tag, `${name}: ${service.image} names a release (major.minor.patch)`).toMatch(/^v?\d+\.\d+\.\d+/);
    }
  });

  it('gives Prometheus the scrape config and alert rules, and Grafana its data source and dashboards with anonymous viewers', () => {
    const mounts = (service: ComposeService) => new Map((service.volumes ?? []).map((v) => v.split(':')).map(([from, to]) => [to!, from!]));
    const prometheus = mounts(compose.services.prometheus!);
    const config = prometheus.get('/etc/prometheus');
    expect(config).toBe('./deploy/prometheus');
    expect([compose.services.prometheus!.command].flat()).toContain('--config.file=/etc/prometheus/prometheus.yml');
    const rules = (parse(read('deploy/prometheus/prometheus.yml')) as { rule_files: string[] }).rule_files;
    expect(rules).toEqual(['alerts.yml']);
    for (const file of rules) expect(existsSync(join(ROOT, 'deploy/prometheus', file)), file).toBe(true);

    const grafana = mounts(compose.services.grafana!);
    expect(grafana.get('/etc/grafana/provisioning')).toBe('./deploy/grafana/provisioning');
    const dashboards = read('deploy/grafana/provisioning/dashboards/tributary.yml');
    const dashboardDir = /path: (\S+)/.exec(dashboards)?.[1] ?? '';
    expect(grafana.get(dashboardDir), `the dashboards folder ${dashboardDir} is mounted`).toBe('./deploy/grafana/dashboards');
    const datasource = read('deploy/grafana/provisioning/datasources/prometheus.yml');
    expect(datasource).toContain('url: http://prometheus:9090');
    const env = environmentOf(compose.services.grafana!);
    expect(env.GF_AUTH_ANONYMOUS_ENABLED).toBe('true');
    expect(env.GF_AUTH_ANONYMOUS_ORG_ROLE).toBe('Viewer');
    const home = env.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    expect(home.startsWith(`${dashboardDir}/`)).toBe(true);
    expect(existsSync(join(ROOT, 'deploy/grafana/dashboards', home.slice(dashboardDir.length + 1))), home).toBe(true);
  });

  it('shares the model registry between the inference service and the monitor', () => {
    for (const name of ['inference', 'monitor']) expect(compose.services[name]!.volumes, name).toContain('models:/app/models');
    expect(compose.volumes).toHaveProperty('models');
  });
});
