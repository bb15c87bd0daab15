FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
# The workspace packages' manifests: npm ci links them (their sources come with COPY . . below).
COPY packages/protocol/package.json packages/protocol/
COPY packages/sdk/package.json packages/sdk/
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
# The web client gate serves under / (vite is a runtime dependency for this step).
RUN npm run web:build
# Not root: the image's own unprivileged user, owning only the data directory it writes.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
ENV DATA_DIR=/app/data
CMD ["node", "--import", "tsx", "src/main.ts"]
