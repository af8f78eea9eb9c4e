// A streaming relay as Node's users write one: the `ws` package's
// WebSocketServer in front of an OpenAI-compatible upstream, read with
// Node's fetch (undici). Same protocol subset as bun_relay.js. A benchmark
// peer, not a product.
//
//   UPSTREAM=http://127.0.0.1:9000/v1 PORT_FILE=/tmp/p node bench/peers/node_ws_relay.js
import { writeFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { WebSocketServer } from "ws";
import { relayTurn } from "./relay_turn.js";

const upstream = process.env.UPSTREAM;
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(process.env.PORT ?? 0), path: "/v1/ws" });
wss.on("connection", (ws) => {
  ws.on("message", (data) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      ws.send(JSON.stringify({ type: "error", code: "bad_message", message: "not JSON" }));
      return;
    }
    if (msg.type !== "chat") return;
    const sessionId = msg.session_id ?? randomUUID();
    ws.send(JSON.stringify({ type: "session", session_id: sessionId, request_id: msg.request_id }));
    relayTurn(upstream, sessionId, msg, (frame) => ws.send(frame));
  });
});
wss.on("listening", () => {
  if (process.env.PORT_FILE) writeFileSync(process.env.PORT_FILE, String(wss.address().port));
});
