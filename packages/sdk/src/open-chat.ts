import { AppError, type DeviceName, ErrorCode } from "@shardchat/protocol";
import { DeviceKind, type NodeAddress } from "@shardchat/protocol/wire";
import { ChatClient, type ChatClientOptions } from "./chat-client.js";
import type { Endpoint } from "./endpoint.js";
import type { LoginAnswer } from "./gate-client.js";

export type Transport = "tcp" | "ws" | "ws-json";

/** Redirects (WRONG_NODE) followed before giving up: the ring may move while we connect. */
const MAX_REDIRECTS = 3;

function endpointOf(address: { host: string; tcpPort: number; wsUrl: string }, transport: Transport): Endpoint {
  if (transport === "tcp") return { transport: "tcp", host: address.host, port: address.tcpPort };
  return { transport: "ws", url: address.wsUrl, format: transport === "ws-json" ? "json" : "binary" };
}

/**
 * Connects to the chat node gate named at login and logs in, following WRONG_NODE
 * redirects to the node that owns the user now.
 */
export async function openChat(
  login: LoginAnswer,
  transport: Transport = "tcp",
  options: ChatClientOptions = {},
): Promise<ChatClient> {
  let address = { host: login.host, tcpPort: login.port, wsUrl: login.wsUrl };
  // A token bound to a device kind opens sessions of that kind only: claim it unless told otherwise.
  const device = options.device ?? (login.device ? DEVICE_KIND_OF[login.device] : undefined);
  const clientOptions = device === undefined ? options : { ...options, device };
  for (let attempt = 0; ; attempt++) {
    const client = await ChatClient.connect(endpointOf(address, transport), clientOptions);
    try {
      await client.login(login.uid, login.token);
      return client;
    } catch (err) {
      await client.close();
      const redirect = (err as { redirect?: NodeAddress }).redirect;
      if (err instanceof AppError && err.code === ErrorCode.WRONG_NODE && redirect && attempt < MAX_REDIRECTS) {
        address = { host: redirect.host, tcpPort: redirect.tcpPort, wsUrl: redirect.wsUrl };
        continue;
      }
      throw err;
    }
  }
}

const DEVICE_KIND_OF: Record<DeviceName, DeviceKind> = {
  desktop: DeviceKind.DESKTOP,
  web: DeviceKind.WEB,
  mobile: DeviceKind.MOBILE,
};
