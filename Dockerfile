# sluice: operator + external-metrics API server, one process. See docs/deploy.md.
#
#   podman build -t sluice:0.1.0 .        (or docker build)
#
# Build stage: all dependencies (the `node` devDependency brings the Node 26 that npm scripts use), compile, then
# drop the dev dependencies so node_modules holds only what runs.
#
# BASE: node:26-slim by default. `npm run image` (scripts/image.sh) builds this same file where no registry is
# reachable, on a stand-in it assembles from the project's own Node 26 binary (--build-arg BASE=localhost/sluice-base:…);
# any base with node and npm on PATH, /bin/sh, /usr/bin/env and a `node` user (uid 1000) will do.
ARG BASE=node:26-slim
FROM ${BASE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# Runtime stage: the base image's node runs dist/ (the `node` devDependency was pruned). Files stay owned by root and
# read-only for the `node` user (uid 1000); the Deployment also mounts the root filesystem read-only.
FROM ${BASE}
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Event-driven autoscaler for Kubernetes: KEDA-compatible ScaledObjects, an external-metrics API served from memory" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV NODE_ENV=production
WORKDIR /app
# package.json: "type": "module", and main.js reads its version from it.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# CRDs: installed by `sluice operator --local` only; in a cluster `kubectl apply -k` installs them.
COPY crds ./crds
USER node
EXPOSE 6443
ENTRYPOINT ["node", "dist/main.js"]
# Defaults for the certificate deploy/ mounts; the Deployment passes its own args.
CMD ["operator", "--tls-cert-file=/var/run/sluice/tls/tls.crt", "--tls-private-key-file=/var/run/sluice/tls/tls.key", "--port=6443", "--bind-address=0.0.0.0"]
