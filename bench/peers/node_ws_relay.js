// A streaming relay as Node's users write one: the `ws` package's
// WebSocketServer in front of an OpenAI-compatible upstream, read with
// Node's fetch (undici). Same protocol subset as bun_relay.js. A benchmark
// peer, not a product.
//
//   UPSTREAM=http://127.0.0.1:9000/v1 PORT_FILE=/tmp/p node bench/peers/node_ws_relay.js
import { writeFileSync } from "node:fs";
import { WebSocketServer } from "ws";
import { onClientMessage } from "./relay_turn.js";

const upstream = process.env.UPSTREAM;
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.env.PORT ?? 0), path: "/v1/ws" });
wss.on("connection", (ws) => {
  ws.on("message", (data) => onClientMessage(upstream, data, (frame) => ws.send(frame)));
});
wss.on("listening", () => {
  if (process.env.PORT_FILE) writeFileSync(process.env.PORT_FILE, String(wss.address().port));
});
