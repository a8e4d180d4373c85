# syntax=docker/dockerfile:1
#
# One image for every Tributary service. The service is chosen by SERVICE, at build
# time (--build-arg SERVICE=inference) or at run time (-e SERVICE=monitor):
#   features | inference | monitor | simulator | standalone
#
#   docker build -t tributary-inference --build-arg SERVICE=inference .
#   docker run -p 3000:3000 -e KAFKA_BROKERS=kafka:9092 -e REDIS_URL=redis://redis:6379 \
#     tributary-inference
#
# How the TypeScript runs: with tsx's loader inside node (`node --import tsx`), not
# compiled to JavaScript at build time. The workspaces' package exports point at their
# TypeScript sources, the inference service's worker threads load `*.ts` modules through
# tsx (model-worker-entry.mjs), and Lua scripts and the bundled model registry are read
# beside the sources (import.meta.url); a compiled image would need another layout for all
# of them. tsx (a dependency of every service, so it is in the production install) costs a
# transpile of the sources at start (esbuild: ~0.2 s of the inference service's ~3.5 s
# start, measured) and ~10 MB of esbuild binary. docs/operations.md has the details.

# Node 22 (maintained LTS), pinned to a patch release; pin the digest too
# (node:22.23.3-bookworm-slim@sha256:...) in a registry you control. CI runs the tests
# on Node 20 (engines: >=20); this production install was run by hand on Node 22.
ARG NODE_IMAGE=node:22.23.3-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
# onnxruntime-node's install step downloads GPU libraries from outside the npm
# registry; CPU inference is in the package itself. .npmrc says the same, and
# `npm ci --ignore-scripts` below runs no dependency install script at all.
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# Only the package manifests of the root and of every workspace, so that the
# dependency layers below are rebuilt only when a manifest changes.
FROM base AS manifests
COPY package.json package-lock.json .npmrc ./
COPY shared ./shared
COPY services ./services
RUN find shared services -type f ! -name package.json -delete \
 && find shared services -depth -type d -empty -delete

# All dependencies, for lint, typecheck and tests in a container:
#   docker build --target dev -t tributary-dev . && docker run --rm tributary-dev npm run test:unit
FROM base AS dev
COPY --from=manifests /app ./
RUN npm ci --ignore-scripts
COPY . .
RUN node scripts/bundle-typebox.mjs

# Production dependencies only: no devDependencies (vitest, eslint, typescript,
# testcontainers, ...). tsx is included: every service depends on it.
FROM base AS prod-deps
COPY --from=manifests /app ./
COPY scripts/bundle-typebox.mjs ./scripts/
# onnxruntime-node ships native libraries for every platform: keep Linux on
# this image's CPU architecture only (about 240 MB less). TypeBox in one module
# (the postinstall step that --ignore-scripts skips): ~0.9 s less at each start.
RUN npm ci --omit=dev --ignore-scripts \
 && node scripts/bundle-typebox.mjs \
 && test -x node_modules/.bin/tsx \
 && test ! -e node_modules/vitest \
 && arch="$(node -p process.arch)" \
 && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 -type d ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -type d -path '*/linux/*' ! -name "$arch" -exec rm -rf {} + \
 && npm cache clean --force

# The sources the services run, without their tests.
FROM base AS sources
COPY tsconfig.base.json tsconfig.json ./
COPY shared/src ./shared/src
COPY services ./services
RUN find shared services \( -name test -type d -prune -exec rm -rf {} + \) -o \( -name '*.test.ts' -type f -exec rm -f {} + \)

FROM base AS runtime
ARG SERVICE=inference
# librdkafka, the C Kafka client the inference service produces its prediction log with
# (PREDICTION_LOG_PRODUCER; without it, kafkajs in a worker thread). Debian bookworm's.
RUN apt-get update \
 && apt-get install -y --no-install-recommends librdkafka1=2.0.2-1 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    SERVICE=${SERVICE} \
    HOST=0.0.0.0
# The application files belong to root and are read-only for the service user. The
# model registry is the one directory it may write to (versions registered through
# the admin API); docker-compose.yml keeps it in a volume shared with the monitor.
COPY --from=prod-deps /app ./
COPY --from=sources /app ./
COPY --chown=node:node models ./models
# The unprivileged user of the node images (uid 1000).
USER node
EXPOSE 3000 3001 3002
# /healthz on PORT, else on the service's default port (inference and standalone 3000,
# features 3001, monitor 3002). The simulator serves no HTTP: it passes while it runs
# (docker-compose.yml disables the check for it).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "if(process.env.SERVICE==='simulator')process.exit(0);const d={features:3001,monitor:3002};const p=process.env.PORT||d[process.env.SERVICE]||3000;fetch(`http://127.0.0.1:${p}/healthz`,{signal:AbortSignal.timeout(4000)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The service's `npm start` (tsx src/main.ts, with the node flags its start script gives: the
# feature pipeline's larger young generation, docs/feature-engine.md) as one node process with
# tsx's loader, without npm or a shell left in between, so that SIGTERM reaches the service.
CMD ["sh", "-c", "if [ ! -f \"services/$SERVICE/src/main.ts\" ]; then echo \"unknown SERVICE '$SERVICE': expected one of: $(ls services | tr '\\n' ' ')\" >&2; exit 64; fi; flags=''; if [ \"$SERVICE\" = features ]; then flags='--max-semi-space-size=64'; fi; cd \"services/$SERVICE\" && exec node $flags --import tsx src/main.ts"]
