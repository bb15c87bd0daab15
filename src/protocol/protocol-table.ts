import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * README's protocol tables, generated from proto/shardchat/v1/client.proto: every request of
 * the Envelope with its response, what it does and the errors it answers, and every push. The
 * text comes from the comment above each message; a line starting with "Errors:" in it lists
 * the codes (INVALID_ARGUMENT, STORAGE_UNAVAILABLE and NOT_LOGGED_IN can answer any request).
 */
export const CLIENT_PROTO = join(import.meta.dirname, "../../proto/shardchat/v1/client.proto");

interface EnvelopeField {
  type: string;
  name: string;
  number: number;
}

/** The fields of Envelope's `body` oneof. */
function envelopeFields(proto: string): EnvelopeField[] {
  const envelope = /message Envelope \{[\s\S]*?oneof body \{([\s\S]*?)\n {2}\}/.exec(proto);
  if (!envelope) throw new Error("client.proto has no Envelope body oneof");
  return [...(envelope[1] as string).matchAll(/^\s*(\w+)\s+(\w+)\s*=\s*(\d+);/gm)].map((m) => ({
    type: m[1] as string,
    name: m[2] as string,
    number: Number(m[3]),
  }));
}

/** The comment block right above `message <name> {`, joined into one line. */
function messageDoc(proto: string, name: string): string {
  const lines = proto.split("\n");
  const at = lines.findIndex((l) => l.startsWith(`message ${name} {`));
  if (at < 0) return "";
  const doc: string[] = [];
  for (let i = at - 1; i >= 0 && /^\s*\/\//.test(lines[i] as string); i--) {
    doc.unshift((lines[i] as string).replace(/^\s*\/\/\s?/, ""));
  }
  return doc.join(" ").trim();
}

/** The doc without its "Errors: ..." sentence, and that sentence's text. */
function splitErrors(doc: string): { what: string; errors: string } {
  const at = doc.search(/Errors:/);
  if (at < 0) return { what: doc, errors: "" };
  const rest = doc.slice(at + "Errors:".length);
  const end = rest.search(/\.(\s|$)/);
  const errors = (end < 0 ? rest : rest.slice(0, end)).trim();
  const after = end < 0 ? "" : rest.slice(end + 1).trim();
  return { what: `${doc.slice(0, at).trim()} ${after}`.trim(), errors };
}

function cell(text: string): string {
  return text.replace(/\|/g, "\\|") || "";
}

export function protocolMarkdown(proto: string = readFileSync(CLIENT_PROTO, "utf8")): string {
  const fields = envelopeFields(proto);
  const byName = new Map(fields.map((f) => [f.name, f]));
  const requests = fields.filter((f) => f.name.endsWith("_req"));
  const pushes = fields.filter((f) => f.name.endsWith("_push"));
  const requestRows = requests.map((req) => {
    const resp = byName.get(req.name.replace(/_req$/, "_resp"));
    const { what, errors } = splitErrors(messageDoc(proto, req.type));
    const answer = resp ? `\`${resp.name}\` ${resp.type} (${resp.number})` : "";
    return `| \`${req.name}\` ${req.type} (${req.number}) | ${answer} | ${cell(what)} | ${cell(errors)} |`;
  });
  const pushRows = pushes.map((push) => {
    const { what } = splitErrors(messageDoc(proto, push.type));
    return `| \`${push.name}\` ${push.type} (${push.number}) | ${cell(what)} |`;
  });
  return [
    "| request (field number) | response | what | errors (besides INVALID_ARGUMENT, STORAGE_UNAVAILABLE) |",
    "|---|---|---|---|",
    ...requestRows,
    "",
    "| push (field number, req_id 0) | what |",
    "|---|---|",
    ...pushRows,
  ].join("\n");
}

export const START = "<!-- protocol:start (npm run docs) -->";
export const END = "<!-- protocol:end -->";

/** README with its protocol section replaced by the current tables. */
export function readmeWithProtocol(readme: string, proto?: string): string {
  const from = readme.indexOf(START);
  const to = readme.indexOf(END);
  if (from < 0 || to < from) throw new Error("README has no protocol markers");
  return `${readme.slice(0, from + START.length)}\n${protocolMarkdown(proto)}\n${readme.slice(to)}`;
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  const path = join(import.meta.dirname, "../../README.md");
  writeFileSync(path, readmeWithProtocol(readFileSync(path, "utf8")));
  console.log("README protocol tables written");
}
