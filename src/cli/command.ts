import type { ChatClient } from "@shardchat/sdk";

/** A terminal-client command on a logged-in session: one-shot or typed in chat mode ("/name"). */
export interface SessionCommand {
  args: string;
  what: string;
  run(chat: ChatClient, args: string[]): Promise<void>;
}

/** value, or an error naming the missing argument. */
export function need(value: string | undefined, name: string): string {
  if (!value) throw new Error(`missing ${name}`);
  return value;
}
