// A streaming relay as Bun's users write one: Bun.serve's built-in
// WebSocket server (uWebSockets) in front of an OpenAI-compatible upstream,
// read with fetch. It speaks the part of Sluice's protocol v1 that
// sluice-loadgen uses (chat -> session, delta..., done), so that the same
// load generator drives it and Sluice. A benchmark peer, not a product.
//
//   UPSTREAM=http://127.0.0.1:9000/v1 PORT_FILE=/tmp/p bun bench/peers/bun_relay.js
import { writeFileSync } from "node:fs";
import { onClientMessage } from "./relay_turn.js";

const upstream = process.env.UPSTREAM;

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(process.env.PORT ?? 0),
  fetch(req, server) {
    if (server.upgrade(req)) return;
    return new Response("WebSocket only\n", { status: 426 });
  },
  websocket: {
    message(ws, message) {
      onClientMessage(upstream, message, (frame) => ws.send(frame));
    },
  },
});
if (process.env.PORT_FILE) writeFileSync(process.env.PORT_FILE, String(server.port));
