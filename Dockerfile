# One image for the three service processes (api/main, worker, media-worker); pick with the command.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY tsconfig.json ./
COPY workflows ./workflows
COPY activities ./activities
COPY src ./src
COPY bin ./bin
USER node
CMD ["node", "--import", "tsx", "src/worker.ts"]
