# One image for the three service processes (dist/src/worker.js, dist/src/media-worker.js,
# dist/src/api/main.js); pick with the command (docker-compose.yml). Compiled JavaScript only: the
# build stage compiles with tsc and bundles the workflow code once (npm run build, scripts/build.sh),
# so the worker neither loads TypeScript nor runs webpack at start. docs/deploying.md, "The image".
# bookworm (glibc), not alpine: @livekit/rtc-node and Temporal's core bridge ship glibc binaries.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build.sh ./scripts/
COPY workflows ./workflows
COPY activities ./activities
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# dist/src, dist/activities, dist/workflows and dist/workflow-bundle.js (loaded by the session worker).
COPY --from=build /app/dist ./dist
USER node
CMD ["node", "dist/src/worker.js"]
