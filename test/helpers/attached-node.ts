/**
 * A stand-in chat node for status's attach tests, run as its own process so that it can be
 * killed: it listens on a port (its "gRPC address"), registers with the status server at argv[2]
 * as argv[3], and holds StatusService.AttachNode. With argv[4] "detach" it then ends the stream
 * (as a network break would) and keeps listening. Prints "attached" / "detached" when done.
 */
import { createServer } from "node:net";
import { StatusServiceService } from "../../src/gen/shardchat/v1/status.js";
import { grpcClient } from "../../src/grpc/api.js";

const [statusAddr = "", nodeId = "", mode = ""] = process.argv.slice(2);
const listener = createServer((socket) => socket.destroy());
await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
const port = (listener.address() as { port: number }).port;
const status = grpcClient(StatusServiceService, statusAddr);
await status.api.registerNode({
  node: {
    nodeId,
    host: "127.0.0.1",
    tcpPort: port,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    grpcAddr: `127.0.0.1:${port}`,
    weight: 1,
    connections: 0,
  },
});
const stream = status.openBidiStream(StatusServiceService.attachNode);
stream.on("error", () => undefined);
stream.on("data", () => undefined);
stream.write({ nodeId });
// Past a round trip, so the stream is open at status before anyone acts on the line below.
await status.api.listNodes({});
console.log("attached");
if (mode === "detach") {
  stream.cancel();
  console.log("detached");
}
