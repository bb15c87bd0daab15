import { Worker, type WorkerOptions } from "node:worker_threads";

const tsxApi = import.meta.resolve("tsx/esm/api");

/** The workers import @shardchat/sdk from its sources (packages/sdk/src), as the load tool does. */
const SOURCE_CONDITION = "--conditions=shardchat-source";

/**
 * A worker thread running a TypeScript module: the worker registers tsx itself before importing
 * it, which works however the parent was started (node --import tsx, vitest, a plain loader).
 * It resolves workspace packages from their sources whether or not the parent was told to
 * (vitest resolves them itself, not through Node's conditions).
 */
export function tsWorker(module: URL, options: Omit<WorkerOptions, "eval"> = {}): Worker {
  const boot = `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(module.href)}); })`;
  const execArgv = process.execArgv.includes(SOURCE_CONDITION)
    ? process.execArgv
    : [...process.execArgv, SOURCE_CONDITION];
  return new Worker(boot, { execArgv, ...options, eval: true });
}
