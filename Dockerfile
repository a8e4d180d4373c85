# syntax=docker/dockerfile:1
#
# One image per Tributary service. The service is chosen by SERVICE, at build
# time (--build-arg SERVICE=inference) or at run time (-e SERVICE=monitor):
#   features | inference | monitor | simulator | standalone | trainer
# Services run their TypeScript sources with tsx (a runtime dependency of every
# service), so there is no separate compile step.
#
#   docker build -t tributary-inference --build-arg SERVICE=inference .
#   docker run -p 3000:3000 -e KAFKA_BROKERS=kafka:9092 -e REDIS_URL=redis://redis:6379 \
#     tributary-inference

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS base
WORKDIR /app
# onnxruntime-node's install step downloads GPU libraries from outside the npm
# registry; CPU inference is in the package itself. .npmrc says the same.
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
#   docker build --target dev -t tributary-dev . && docker run --rm tributary-dev npm test
FROM base AS dev
COPY --from=manifests /app ./
RUN npm ci
COPY . .

# Production dependencies only (tsx included: every service depends on it).
FROM base AS prod-deps
COPY --from=manifests /app ./
# onnxruntime-node ships native libraries for every platform: keep Linux on
# this image's CPU architecture only (about 240 MB less).
RUN npm ci --omit=dev \
 && test -x node_modules/.bin/tsx \
 && arch="$(node -p process.arch)" \
 && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 -type d ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -type d -path '*/linux/*' ! -name "$arch" -exec rm -rf {} + \
 && npm cache clean --force

FROM base AS runtime
ARG SERVICE=inference
ENV NODE_ENV=production \
    SERVICE=${SERVICE} \
    HOST=0.0.0.0 \
    PATH=/app/node_modules/.bin:$PATH
# The application files belong to root and are read-only for the service user;
# /app/data is the one directory the service may write to.
COPY --from=prod-deps /app ./
COPY . .
RUN mkdir -p /app/data && chown node:node /app/data
USER node
EXPOSE 3000 3001 3002
# PORT wins; otherwise each service's default port (inference 3000,
# features 3001, monitor 3002).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const d={features:3001,monitor:3002};const p=process.env.PORT||d[process.env.SERVICE]||3000;fetch(`http://127.0.0.1:${p}/healthz`,{signal:AbortSignal.timeout(4000)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The command of the workspace's `npm start` (tsx src/main.ts), run without npm
# and a shell in between so that SIGTERM reaches the service (tsx relays it).
CMD ["sh", "-c", "if [ ! -f \"services/$SERVICE/package.json\" ]; then echo \"unknown SERVICE '$SERVICE': expected one of: $(ls services | tr '\\n' ' ')\" >&2; exit 64; fi; cd \"services/$SERVICE\" && exec tsx src/main.ts"]
