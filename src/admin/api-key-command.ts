import { parseArgs } from "node:util";
import type { ApiKeyStore } from "../storage/ports.js";
import { createApiKey } from "./keys.js";

/**
 * `npm run admin -- api-key create --name <name>` (prints the key once), `api-key list`,
 * `api-key revoke <id>`: on the storage the server's settings name (the same environment).
 */
const USAGE = `usage: npm run admin -- api-key create --name <name>
       npm run admin -- api-key list
       npm run admin -- api-key revoke <id>`;

/** Runs one command on `keys`; answers the lines to print. Throws AppError on refusal. */
export async function runAdminCommand(keys: ApiKeyStore, argv: string[]): Promise<string[]> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { name: { type: "string" } },
  });
  const [group, command, arg] = positionals;
  if (group !== "api-key") throw new UsageError(USAGE);
  if (command === "create") {
    const name = values.name?.trim();
    if (!name) throw new UsageError("api-key create needs --name <name>");
    const { key, record } = await createApiKey(keys, name);
    return [
      `created API key ${record.id} (${record.name})`,
      key,
      "Keep it now: it is shown only this once (only its digest is stored).",
    ];
  }
  if (command === "list") {
    const all = await keys.list();
    if (all.length === 0) return ["no API keys"];
    return all.map(
      (k) =>
        `${k.id}\t${k.name}\tcreated ${new Date(k.createdAt).toISOString()}\t${
          k.revokedAt ? `revoked ${new Date(k.revokedAt).toISOString()}` : "valid"
        }`,
    );
  }
  if (command === "revoke") {
    if (!arg) throw new UsageError("api-key revoke needs the key's id");
    const revoked = await keys.revoke(arg, Date.now());
    if (!revoked) throw new UsageError(`no valid API key ${arg}`);
    return [`revoked API key ${arg}`];
  }
  throw new UsageError(USAGE);
}

/** A command line that names no command, or a command that could not be done: printed, exit 1. */
export class UsageError extends Error {}
