import { randomUUID } from "node:crypto";

// A client's message to a benchmark relay: a `chat` starts a session (or
// goes on with one) and its turn; anything else is ignored.
export function onClientMessage(upstream, data, send) {
  let msg;
  try {
    msg = JSON.parse(data);
  } catch {
    send(JSON.stringify({ type: "error", code: "bad_message", message: "not JSON" }));
    return;
  }
  if (msg.type !== "chat") return;
  const sessionId = msg.session_id ?? randomUUID();
  send(JSON.stringify({ type: "session", session_id: sessionId, request_id: msg.request_id }));
  relayTurn(upstream, sessionId, msg, send);
}

// One turn of a benchmark relay: POST the chat to the upstream with
// stream: true, read its SSE with fetch, and send each content delta to the
// client as a Sluice protocol v1 `delta` frame, then `done`. Shared by the
// Bun and Node peers (both have the same fetch), as their users would write it.
export async function relayTurn(upstream, sessionId, msg, send) {
  let offset = 0;
  let finish = "stop";
  try {
    const res = await fetch(`${upstream}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        model: "bench",
        stream: true,
        messages: [{ role: "user", content: msg.input ?? "" }],
      }),
    });
    if (!res.ok) throw new Error(`upstream HTTP ${res.status}`);
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of res.body) {
      buffered += decoder.decode(chunk, { stream: true });
      let end;
      while ((end = buffered.indexOf("\n\n")) >= 0) {
        const event = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data:")) continue;
          const data = line.slice(5).trim();
          if (data === "[DONE]") continue;
          const choice = JSON.parse(data).choices?.[0];
          const text = choice?.delta?.content;
          if (text) send(JSON.stringify({ type: "delta", session_id: sessionId, offset: ++offset, text }));
          if (choice?.finish_reason) finish = choice.finish_reason;
        }
      }
    }
  } catch (e) {
    send(JSON.stringify({ type: "error", session_id: sessionId, code: "upstream_error", message: String(e) }));
    finish = "error";
  }
  send(JSON.stringify({ type: "done", session_id: sessionId, request_id: msg.request_id, finish_reason: finish }));
}
