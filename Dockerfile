FROM node:20-bookworm-slim
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY . .
# The web client gate serves under / (vite is a runtime dependency for this step).
RUN npm run web:build
CMD ["node", "--import", "tsx", "src/main.ts"]
