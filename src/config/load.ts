import { type Config, type SettingName, settings } from "./settings.js";

export class ConfigError extends Error {}

/**
 * The one config loader: every setting from `env` (default: process.env), each validated
 * by its schema. A bad value fails fast with the setting's name.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const name of Object.keys(settings) as SettingName[]) {
    const setting = settings[name];
    const raw = env[name] ?? setting.default;
    const parsed = setting.schema.safeParse(raw);
    if (parsed.success) out[name] = parsed.data;
    else problems.push(`${name}=${JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join("; ")}`);
  }
  if (problems.length > 0) throw new ConfigError(`bad setting: ${problems.join(" | ")}`);
  return { ...(out as Config), ...overrides };
}

/** The settings table, for `--help` and README. */
export function describeSettings(): string {
  return (Object.keys(settings) as SettingName[])
    .map((name) => `  ${name.padEnd(30)} ${settings[name].doc} (default: ${JSON.stringify(settings[name].default)})`)
    .join("\n");
}
