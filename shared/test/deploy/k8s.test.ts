/**
 * deploy/k8s, checked without a cluster. Rendered by `kubectl kustomize` (kustomize built
 * into kubectl; when kubectl is missing, by reading the kustomization's resources, with a
 * warning). kubeconform is neither in Debian nor on npm, so the schema check is done with
 * the same Kubernetes OpenAPI schemas compiled into `kubernetes-models` (types, required
 * fields, enums, formats), and unknown fields, which those schemas let pass, are caught by
 * TypeScript's excess-property check against `kubernetes-types` (what kubeconform -strict
 * does). Then the manifests are checked against the services: ports, probe paths, scrape
 * annotations, variables, replica bounds.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { Container, Probe } from 'kubernetes-types/core/v1.js';
import type { Deployment as DeploymentType } from 'kubernetes-types/apps/v1.js';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { VARIABLES, loadConfig } from '../../src/config.js';
import { composeFile, IMAGE_VARIABLES, read, ROOT, serviceEntries, tool, VARIABLE_NAMES } from './deployment.js';

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

const DIR = 'deploy/k8s';
const kustomization = parse(read(`${DIR}/kustomization.yaml`)) as {
  namespace: string;
  labels?: { pairs: Record<string, string>; includeTemplates?: boolean }[];
  resources: string[];
  images?: { name: string; newName?: string; newTag?: string }[];
};

function documents(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const kubectl = tool('kubectl', ['kustomize', DIR]);
if (kubectl.missing) console.warn('kubectl is not on PATH: the manifests are read from the kustomization resources, without kustomize');

/** The manifests as `kubectl apply -k` would send them. */
const objects: K8sObject[] = kubectl.missing
  ? kustomization.resources.flatMap((file) =>
      documents(read(`${DIR}/${file}`)).map((o) => ({
        ...o,
        metadata: { ...o.metadata, ...(o.kind === 'Namespace' ? {} : { namespace: kustomization.namespace }) },
      })),
    )
  : documents(kubectl.stdout);

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};
const TYPES: Record<string, [module: string, type: string]> = {
  'v1/Namespace': ['core/v1', 'Namespace'],
  'v1/ConfigMap': ['core/v1', 'ConfigMap'],
  'v1/Secret': ['core/v1', 'Secret'],
  'v1/Service': ['core/v1', 'Service'],
  'apps/v1/Deployment': ['apps/v1', 'Deployment'],
  'autoscaling/v2/HorizontalPodAutoscaler': ['autoscaling/v2', 'HorizontalPodAutoscaler'],
  'policy/v1/PodDisruptionBudget': ['policy/v1', 'PodDisruptionBudget'],
};

const find = <T = K8sObject>(kind: string, name: string) =>
  objects.find((o) => o.kind === kind && o.metadata.name === name) as T | undefined;
const deployments = objects.filter((o) => o.kind === 'Deployment') as unknown as DeploymentType[];
const configMap = find<{ data: Record<string, string> }>('ConfigMap', 'tributary-config')!;
const secret = find<{ stringData?: Record<string, string>; data?: Record<string, string> }>('Secret', 'tributary-secrets')!;
const services = serviceEntries();

/** The project service a Deployment runs (its SERVICE variable), and its container. */
function runs(deployment: DeploymentType): { service: string; container: Container } {
  const containers = deployment.spec?.template.spec?.containers ?? [];
  expect(containers, deployment.metadata?.name).toHaveLength(1);
  const container = containers[0]!;
  const service = container.env?.find((e) => e.name === 'SERVICE')?.value ?? '';
  return { service, container };
}

/** The container port a probe or a Service names (by number or by port name). */
function portOf(container: Container, port: number | string | undefined): number | undefined {
  return typeof port === 'number' ? port : container.ports?.find((p) => p.name === port)?.containerPort;
}

describe('deploy/k8s', () => {
  it('renders with kustomize', () => {
    if (!kubectl.missing) expect(kubectl.status, kubectl.stderr).toBe(0);
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds).toEqual(
      [
        'ConfigMap/tributary-config',
        'Deployment/tributary-features',
        'Deployment/tributary-inference',
        'Deployment/tributary-monitor',
        'HorizontalPodAutoscaler/tributary-inference',
        'Namespace/tributary',
        'PodDisruptionBudget/tributary-inference',
        'Secret/tributary-secrets',
        'Service/tributary-features',
        'Service/tributary-inference',
        'Service/tributary-monitor',
      ].sort(),
    );
    for (const o of objects) if (o.kind !== 'Namespace') expect(o.metadata.namespace, o.metadata.name).toBe(kustomization.namespace);
  });

  it('validates against the Kubernetes API schemas (kubernetes-models)', () => {
    const problems: string[] = [];
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`];
      if (Model === undefined) {
        problems.push(`${o.apiVersion} ${o.kind}: no schema here (add it to MODELS)`);
        continue;
      }
      try {
        new Model(o as never).validate();
      } catch (error) {
        problems.push(`${o.kind}/${o.metadata.name}: ${(error as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it(
    'has no field the Kubernetes API does not know (TypeScript excess-property check against kubernetes-types)',
    { timeout: 60_000 },
    () => {
      const dir = join(ROOT, '.tmp/k8s-strict');
      mkdirSync(dir, { recursive: true });
      const imports = new Map<string, Set<string>>();
      const lines = objects.map((o, i) => {
        const [module, type] = TYPES[`${o.apiVersion}/${o.kind}`] ?? ['', ''];
        if (!imports.has(module)) imports.set(module, new Set());
        imports.get(module)!.add(type);
        return `// ${o.kind}/${o.metadata.name}\nexport const object${i} = ${JSON.stringify(o, null, 2)} satisfies ${type};`;
      });
      const header = [...imports].map(
        ([module, types]) => `import type { ${[...types].join(', ')} } from 'kubernetes-types/${module}.js';`,
      );
      writeFileSync(join(dir, 'manifests.ts'), [...header, ...lines].join('\n') + '\n');
      writeFileSync(
        join(dir, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: { strict: true, noEmit: true, module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', types: [] },
          files: ['manifests.ts'],
        }),
      );
      const tsc = tool(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', dir]);
      expect(tsc.status, `${tsc.stdout}${tsc.stderr}`).toBe(0);
    },
  );

  it('runs the feature pipeline, the inference service and the monitor, each from the one image', () => {
    const image = kustomization.images?.find((i) => i.name === 'tributary');
    expect(image?.newTag).toMatch(/^\d+\.\d+\.\d+/);
    expect(new Set(deployments.map((d) => runs(d).service))).toEqual(new Set(['features', 'inference', 'monitor']));
    for (const d of deployments) {
      const { service, container } = runs(d);
      expect(services.get(service)?.runnable, service).toBe(true);
      if (!kubectl.missing) expect(container.image, service).toBe(`${image?.newName ?? 'tributary'}:${image?.newTag}`);
    }
  });

  it('probes /readyz for readiness and /healthz for liveness on the port each service listens on, and says it to Prometheus', () => {
    for (const d of deployments) {
      const { service, container } = runs(d);
      const entry = services.get(service)!;
      const port = Number(container.env?.find((e) => e.name === 'PORT')?.value ?? entry.defaultPort);
      expect(port, `${service}: its own default port`).toBe(entry.defaultPort);
      expect(container.ports?.map((p) => p.containerPort)).toEqual([port]);
      const probe = (p: Probe | undefined, path: string, what: string) => {
        expect(p?.httpGet?.path, `${service} ${what}`).toBe(path);
        expect(portOf(container, p?.httpGet?.port), `${service} ${what} port`).toBe(port);
      };
      probe(container.readinessProbe, '/readyz', 'readiness');
      probe(container.livenessProbe, '/healthz', 'liveness');
      probe(container.startupProbe, '/healthz', 'startup');
      const annotations = d.spec?.template.metadata?.annotations ?? {};
      expect(annotations['prometheus.io/scrape'], service).toBe('true');
      expect(annotations['prometheus.io/port'], service).toBe(String(port));
      expect(annotations['prometheus.io/path'], service).toBe('/metrics');
    }
  });

  it('requests and limits CPU and memory, and runs unprivileged on a read-only root file system', () => {
    for (const d of deployments) {
      const { service, container } = runs(d);
      for (const kind of ['requests', 'limits'] as const)
        for (const resource of ['cpu', 'memory'])
          expect(container.resources?.[kind]?.[resource], `${service} ${kind}.${resource}`).toBeDefined();
      expect(d.spec?.template.spec?.securityContext?.runAsNonRoot, service).toBe(true);
      expect(container.securityContext?.allowPrivilegeEscalation, service).toBe(false);
      expect(container.securityContext?.readOnlyRootFilesystem, service).toBe(true);
      expect(container.securityContext?.capabilities?.drop, service).toEqual(['ALL']);
      // tsx's cache needs a writable /tmp.
      expect(
        container.volumeMounts?.map((m) => m.mountPath),
        service,
      ).toContain('/tmp');
    }
  });

  it('configures the services with variables they read, secrets in the Secret only, values they accept', () => {
    const configKeys = Object.keys(configMap.data);
    const secretKeys = Object.keys({ ...secret.stringData, ...secret.data });
    for (const key of [...configKeys, ...secretKeys])
      expect(VARIABLE_NAMES.has(key), `${key} is a variable of shared/src/config.ts`).toBe(true);
    // Credentials: the Redis URL (password), API keys.
    const secretVariables = Object.entries(VARIABLES)
      .filter(([, v]) => 'secret' in v && v.secret === true)
      .map(([k]) => k);
    for (const key of [...secretVariables, 'REDIS_URL']) expect(configKeys, `${key} belongs in the Secret`).not.toContain(key);
    expect(secretKeys).toContain('REDIS_URL');
    for (const d of deployments) {
      const { service, container } = runs(d);
      expect(container.envFrom?.map((e) => e.configMapRef?.name ?? e.secretRef?.name)).toEqual(['tributary-config', 'tributary-secrets']);
      const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
      for (const key of Object.keys(env))
        expect(VARIABLE_NAMES.has(key) || IMAGE_VARIABLES.has(key), `${service}: ${key} is read by the service or the image`).toBe(true);
      const { SERVICE: _service, ...variables } = env;
      expect(() => loadConfig({ ...configMap.data, ...secret.stringData, ...variables }), service).not.toThrow();
    }
  });

  it('gives an inference pod the time its shutdown takes with Kafka down: the preStop pause, the pushes in flight, the prediction log', () => {
    const inference = find<DeploymentType>('Deployment', 'tributary-inference')!;
    const { container } = runs(inference);
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
    const config = loadConfig({ ...configMap.data, ...secret.stringData, ...env });
    const [command, pause] = container.lifecycle?.preStop?.exec?.command ?? [];
    expect(command).toBe('sleep');
    // Then a few seconds for the rest: the producer, the model's threads, the connections.
    const shutdownSeconds = Number(pause) + (config.EVENTS_PUBLISH_TIMEOUT + config.PREDICTION_LOG_CLOSE_TIMEOUT) / 1000 + 5;
    expect(shutdownSeconds).toBeLessThanOrEqual(inference.spec?.template.spec?.terminationGracePeriodSeconds ?? 30);
  });

  it("bounds the pipeline's replicas by the partitions of its source topics, keeps one monitor, and autoscales inference", () => {
    const init = [composeFile().services['kafka-init']!.command].flat().join('\n');
    const partitions = new Map([...init.matchAll(/([\w.-]+):(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
    const features = find<DeploymentType>('Deployment', 'tributary-features')!;
    const sources = [VARIABLES.TOPIC_TRANSACTIONS.default, VARIABLES.TOPIC_LABELLED_TRANSACTIONS.default, VARIABLES.TOPIC_LABELS.default];
    const bound = Math.min(...sources.map((t) => partitions.get(t) ?? 0));
    expect(bound).toBeGreaterThan(0);
    expect(features.spec?.replicas).toBeGreaterThanOrEqual(1);
    expect(features.spec?.replicas).toBeLessThanOrEqual(bound);
    // A rolling update never adds a member beyond the planned count.
    expect(features.spec?.strategy?.rollingUpdate?.maxSurge).toBe(0);
    expect(read(`${DIR}/features.yaml`)).toMatch(/members beyond the partition count/);

    const monitor = find<DeploymentType>('Deployment', 'tributary-monitor')!;
    expect(monitor.spec?.replicas).toBe(1);
    expect(monitor.spec?.strategy?.type).toBe('Recreate');

    const inference = find<DeploymentType>('Deployment', 'tributary-inference')!;
    expect(inference.spec?.replicas, 'the autoscaler owns the replica count').toBeUndefined();
    const hpa = find<{
      spec: {
        scaleTargetRef: { kind: string; name: string };
        minReplicas: number;
        maxReplicas: number;
        metrics: { resource?: { name: string } }[];
      };
    }>('HorizontalPodAutoscaler', 'tributary-inference')!;
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: 'Deployment', name: 'tributary-inference' });
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(2);
    expect(hpa.spec.maxReplicas).toBeGreaterThan(hpa.spec.minReplicas);
    expect(hpa.spec.metrics.map((m) => m.resource?.name)).toContain('cpu');
    expect(runs(inference).container.resources?.requests?.cpu, 'utilization is measured against the request').toBeDefined();
  });

  it('puts the common labels on the pods too, where a PodMonitor selects them', () => {
    const common = kustomization.labels ?? [];
    expect(common.map((l) => l.pairs)).toContainEqual({ 'app.kubernetes.io/part-of': 'tributary' });
    for (const l of common) expect(l.includeTemplates, JSON.stringify(l.pairs)).toBe(true);
    if (kubectl.missing) return;
    for (const d of deployments)
      expect(d.spec?.template.metadata?.labels, d.metadata?.name).toMatchObject({ 'app.kubernetes.io/part-of': 'tributary' });
  });

  it('selects the pods of each Deployment from its Service, PodDisruptionBudget and selector', () => {
    const podLabels = new Map(deployments.map((d) => [d.metadata?.name, d.spec?.template.metadata?.labels ?? {}]));
    for (const d of deployments) {
      const labels = podLabels.get(d.metadata?.name)!;
      for (const [k, v] of Object.entries(d.spec?.selector.matchLabels ?? {})) expect(labels[k], `${d.metadata?.name} selector`).toBe(v);
    }
    for (const o of objects.filter((x) => x.kind === 'Service' || x.kind === 'PodDisruptionBudget')) {
      const spec = o.spec as {
        selector: Record<string, string> & { matchLabels?: Record<string, string> };
        ports?: { targetPort: string | number }[];
      };
      const selector = spec.selector.matchLabels ?? spec.selector;
      const matched = deployments.filter((d) => Object.entries(selector).every(([k, v]) => podLabels.get(d.metadata?.name)?.[k] === v));
      expect(
        matched.map((d) => d.metadata?.name),
        `${o.kind}/${o.metadata.name}`,
      ).toEqual([o.metadata.name]);
      for (const port of spec.ports ?? [])
        expect(portOf(runs(matched[0]!).container, port.targetPort), `${o.metadata.name} targetPort`).toBeDefined();
    }
  });
});

describe('deploy/k8s/prometheus-scrape.yml', () => {
  const config = parse(read(`${DIR}/prometheus-scrape.yml`)) as {
    scrape_configs: {
      kubernetes_sd_configs: { role: string; namespaces: { names: string[] } }[];
      relabel_configs: { source_labels: string[]; action: string; regex?: string; target_label?: string }[];
    }[];
  };
  const job = config.scrape_configs[0]!;
  const meta = (annotation: string) => `__meta_kubernetes_pod_annotation_${annotation.replace(/[^\w]/g, '_')}`;

  it("discovers the manifests' pods by namespace and keeps those annotated for scraping", () => {
    expect(job.kubernetes_sd_configs).toEqual([{ role: 'pod', namespaces: { names: [kustomization.namespace] } }]);
    const keep = job.relabel_configs.find((r) => r.action === 'keep');
    expect(keep).toMatchObject({ source_labels: [meta('prometheus.io/scrape')], regex: 'true' });
  });

  it('scrapes the annotated port and path, and names the job after the pod', () => {
    const target = (label: string) => job.relabel_configs.find((r) => r.target_label === label);
    expect(target('__metrics_path__')?.source_labels).toEqual([meta('prometheus.io/path')]);
    expect(target('__address__')?.source_labels).toEqual(['__address__', meta('prometheus.io/port')]);
    // The relabelling regex turns "10.0.0.7:8080;3001" into "10.0.0.7:3001".
    const rule = target('__address__')!;
    expect('10.0.0.7:8080;3001'.replace(new RegExp(`^(?:${rule.regex})$`), '$1:$2')).toBe('10.0.0.7:3001');
    const nameLabel = 'app.kubernetes.io/name';
    expect(target('job')?.source_labels).toEqual([`__meta_kubernetes_pod_label_${nameLabel.replace(/[^\w]/g, '_')}`]);
    for (const d of deployments) {
      expect(d.spec?.template.metadata?.labels?.[nameLabel], d.metadata?.name).toBe(d.metadata?.name);
      for (const annotation of ['prometheus.io/scrape', 'prometheus.io/port', 'prometheus.io/path'])
        expect(d.spec?.template.metadata?.annotations, d.metadata?.name).toHaveProperty([annotation]);
    }
  });
});
