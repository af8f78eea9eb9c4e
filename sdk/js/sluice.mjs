// Sluice JavaScript client SDK: protocol v1 over WebSocket (docs/protocol.md).
// One ES module, no dependencies and no build step. Browsers use their own
// WebSocket; Node passes one in (`import WebSocket from 'ws'`).
//
// It reconnects by itself (exponential backoff with jitter) and resumes every
// open session from the last offset it delivered, so the application sees
// each event exactly once, in order, and only a status change
// ('reconnecting', then 'resumed') in between.

const PROTOCOL = 'sluice.v1';

/** A tiny event emitter: on/off/once/emit. */
class Emitter {
  #handlers = new Map();

  on(event, fn) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event).add(fn);
    return this;
  }

  off(event, fn) {
    this.#handlers.get(event)?.delete(fn);
    return this;
  }

  once(event, fn) {
    const wrapped = (...args) => {
      this.off(event, wrapped);
      fn(...args);
    };
    return this.on(event, wrapped);
  }

  emit(event, ...args) {
    for (const fn of [...(this.#handlers.get(event) ?? [])]) {
      try {
        fn(...args);
      } catch (err) {
        // An application handler that throws must not break the stream.
        queueMicrotask(() => { throw err; });
      }
    }
  }
}

/** An error the gateway sent, or the SDK's own (code 'closed', 'resume_failed'). */
export class SluiceError extends Error {
  constructor(code, message, frame = undefined) {
    super(message || code);
    this.name = 'SluiceError';
    this.code = code;
    this.frame = frame;
    if (frame?.retry_after_ms !== undefined) this.retryAfterMs = frame.retry_after_ms;
  }
}

// A citation marker: [1], [12], or a group [1, 3] (an ASCII or a Chinese
// comma). [1][3] is two markers. `[1](https://...)` is a Markdown link, not
// a marker.
const MARKER = /\[(\d{1,4}(?:[ \t]*[,，][ \t]*\d{1,4})*)\](?!\()/g;

/**
 * The citation markers in an answer's text, mapped to the turn's sources
 * (docs/protocol.md, "Answers from a knowledge base"): `[n]` cites
 * `items[n - 1]`. Returns one entry per marker, in text order:
 * `{ start, end, marker, numbers, items }` where `text.slice(start, end)` is
 * `marker` (such as `[1, 3]`), `numbers` the cited numbers that have an
 * item and `items` those items. A number with no item is not a citation; a
 * marker with none is left out. Run it on the whole text so far: a marker
 * split across deltas is found once both halves have arrived.
 */
export function citations(text, items) {
  const found = [];
  if (typeof text !== 'string' || !items?.length) return found;
  for (const m of text.matchAll(MARKER)) {
    const numbers = m[1].split(/[,，]/).map((n) => Number(n.trim())).filter((n) => n >= 1 && n <= items.length);
    if (numbers.length === 0) continue;
    found.push({ start: m.index, end: m.index + m[0].length, marker: m[0], numbers, items: numbers.map((n) => items[n - 1]) });
  }
  return found;
}

let requestCounter = 0;
const nextRequestId = () => `r${Date.now().toString(36)}${(++requestCounter).toString(36)}`;

/**
 * One chat session: a conversation the gateway keeps, resumable by id and
 * offset. Events: 'delta', 'tool_call', 'tool_result', 'sources',
 * 'moderation', 'error', 'done', 'session' (the gateway gave it an id), and
 * 'resume_failed'.
 */
export class Session extends Emitter {
  /** @internal */
  constructor(client, saved) {
    super();
    this.client = client;
    this.id = saved?.id ?? null;
    this.resumeToken = saved?.resumeToken ?? null;
    /** The last offset delivered to the application. */
    this.offset = saved?.offset ?? 0;
    this.running = false;
    this.text = '';         // the running turn's text so far
    this.sources = [];      // the running turn's knowledge-base passages (its [n] markers cite them)
    this.turnEnded = false; // a done came: the next event starts another turn
    this.pending = null;    // { requestId, frame, resolve, reject } of the running turn
    this.resuming = Boolean(saved?.id);  // must resume before anything else
  }

  /** What to keep (e.g. in sessionStorage) to resume after a page reload. */
  state() {
    return { id: this.id, resumeToken: this.resumeToken, offset: this.offset };
  }

  /**
   * Starts a turn. `input` is the user's message (a string), or
   * `{ messages: [...] }`. Resolves with the turn's `done` frame plus its
   * `text`; rejects with SluiceError when the gateway refuses the turn.
   */
  send(input, { params, model, traceparent } = {}) {
    if (this.running) return Promise.reject(new SluiceError('session_busy', 'this session already runs a turn'));
    const frame = { type: 'chat', request_id: nextRequestId() };
    if (typeof input === 'string') frame.input = input;
    else frame.messages = input.messages;
    if (params) frame.params = params;
    if (model) frame.model = model;
    if (traceparent) frame.traceparent = traceparent;
    this.running = true;
    this.text = '';
    this.sources = [];
    this.turnEnded = false;
    return new Promise((resolve, reject) => {
      this.pending = { requestId: frame.request_id, frame, resolve, reject };
      this.client._submit(this, frame);
    });
  }

  /** The citation markers in the running (or last) turn's text: citations(text, sources). */
  citations() {
    return citations(this.text, this.sources);
  }

  /** Stops the running turn; its `done` has finish_reason 'cancelled'. */
  cancel() {
    if (!this.id || !this.running) return;
    // The token lets any connection cancel it, attached here or not.
    this.client._sendWhenOpen({
      type: 'cancel', session_id: this.id, resume_token: this.resumeToken, request_id: nextRequestId(),
    });
  }

  /** Forgets the session locally (it stays resumable on the gateway). */
  close() {
    this.client._forget(this);
  }

  /** @internal: a frame of this session, in offset order, each exactly once. */
  _event(f) {
    if (f.offset !== undefined) {
      if (f.offset <= this.offset) return;  // already delivered (a replay after resume)
      this.offset = f.offset;
    }
    if (this.turnEnded && f.offset !== undefined) {
      // A replay (a resume from an earlier offset) went on into the next turn.
      this.turnEnded = false;
      this.text = '';
      this.sources = [];
    }
    switch (f.type) {
      case 'delta':
        this.running = true;
        this.text += f.text;
        this.emit('delta', f);
        break;
      case 'sources':
        this.running = true;
        if (f.origin === 'retrieval') this.sources = f.items ?? [];
        this.emit('sources', f);
        break;
      case 'tool_call':
      case 'tool_result':
      case 'moderation':
        this.running = true;
        this.emit(f.type, f);
        break;
      case 'error':
        this.emit('error', new SluiceError(f.code, f.message, f));
        break;
      case 'done': {
        this.running = false;
        this.turnEnded = true;
        const pending = this.pending;
        this.pending = null;
        const done = { ...f, text: this.text, sources: this.sources, citations: this.citations() };
        this.emit('done', done);
        pending?.resolve(done);
        break;
      }
      default:
        break;  // unknown event types are ignored (protocol v1 only grows)
    }
    this.client._saved(this);
  }

  /** @internal: the turn was refused before it started. */
  _refused(err) {
    this.running = false;
    const pending = this.pending;
    this.pending = null;
    if (pending) pending.reject(err);
    else this.emit('error', err);
  }
}

/**
 * A connection to the gateway carrying any number of sessions.
 *
 * Options: url (ws:// or wss://, ending in /v1/ws), token (a string, or a
 * function returning one or a promise of one: called at every connect),
 * WebSocket (the implementation; globalThis.WebSocket by default),
 * reconnect: { initialDelayMs = 250, maxDelayMs = 10000, jitter = 0.5 },
 * heartbeatMs (15000: a ping when the line is quiet; no pong within
 * heartbeatMs closes and reconnects; 0 turns it off), coalesceMs.
 *
 * Events: 'status' ('connecting', 'open', 'reconnecting', 'resumed',
 * 'closed'), 'error' (SluiceError without a session), 'saved' (a session's
 * state changed: store it to resume after a reload).
 */
export class SluiceClient extends Emitter {
  constructor(options = {}) {
    super();
    if (!options.url) throw new TypeError('SluiceClient: url is required');
    this.options = {
      heartbeatMs: 15000,
      ...options,
      reconnect: { initialDelayMs: 250, maxDelayMs: 10000, jitter: 0.5, ...(options.reconnect ?? {}) },
    };
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.WebSocket) throw new TypeError('SluiceClient: no WebSocket; pass one in (Node: the ws package)');
    this.status = 'idle';
    this.sessions = new Set();
    this.byRequest = new Map();  // request_id -> session, for session/refusal frames
    this.queue = [];             // frames waiting for an open, resumed connection
    this.attempt = 0;
    this.closedByUser = false;
    this.everOpened = false;
    this.ws = null;
    this.timer = null;
    this.heartbeat = null;
  }

  /** Opens the connection; resolves when it is open. */
  connect() {
    this.closedByUser = false;
    if (this.status === 'open') return Promise.resolve();
    const opened = new Promise((resolve) => this.once('_open', resolve));
    if (!this.ws && !this.timer) this._open();
    return opened;
  }

  /** A new session, or one saved earlier with session.state(). */
  session(saved = undefined) {
    const s = new Session(this, saved);
    this.sessions.add(s);
    if (s.resuming && this.status === 'open') this._resume(s);
    return s;
  }

  /** Closes the connection for good (sessions stay resumable on the gateway). */
  close() {
    this.closedByUser = true;
    clearTimeout(this.timer);
    this.timer = null;
    this._stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'client closed');
    this._setStatus('closed');
  }

  // ------------------------------------------------------------ internals

  _setStatus(s) {
    if (this.status === s) return;
    this.status = s;
    this.emit('status', s);
  }

  async _open() {
    this._setStatus(this.everOpened ? 'reconnecting' : 'connecting');
    let url = this.options.url;
    if (this.options.coalesceMs !== undefined) {
      url += (url.includes('?') ? '&' : '?') + `coalesce_ms=${this.options.coalesceMs}`;
    }
    let token = this.options.token;
    try {
      if (typeof token === 'function') token = await token();
    } catch (err) {
      this.emit('error', new SluiceError('unauthorized', `token: ${err?.message ?? err}`));
      this._scheduleReconnect();
      return;
    }
    if (this.closedByUser) return;
    // A browser cannot set headers on a WebSocket: the token rides as a
    // subprotocol (docs/protocol.md, Authentication).
    const protocols = token ? [PROTOCOL, `bearer.${token}`] : [PROTOCOL];
    let ws;
    try {
      ws = new this.WebSocket(url, protocols);
    } catch (err) {
      this.emit('error', new SluiceError('closed', `cannot connect: ${err?.message ?? err}`));
      this._scheduleReconnect();
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      opened = true;
      this.attempt = 0;
      const resumed = this.everOpened;
      this.everOpened = true;
      this._startHeartbeat();
      // Sessions first: every open session resumes from its last offset
      // before anything queued goes out.
      const waiting = [...this.sessions].filter((s) => s.id);
      this.resumesLeft = new Set(waiting);
      for (const s of waiting) this._resume(s);
      // A turn sent but not yet given a session id is sent again: no event
      // of it was seen, so nothing repeats.
      for (const s of this.sessions) {
        if (!s.id && s.pending) this.queue.unshift(s.pending.frame);
      }
      // 'resumed' tells the application its sessions continued: after a
      // drop, or on a first connect that picked up saved sessions.
      const anyResumed = resumed || waiting.length > 0;
      if (this.resumesLeft.size === 0) this._ready(anyResumed);
      else this._resumedStatus = anyResumed;
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      this._lastHeard = Date.now();
      let f;
      try {
        f = JSON.parse(typeof ev.data === 'string' ? ev.data : ev.data.toString());
      } catch {
        return;
      }
      this._frame(f);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this._stopHeartbeat();
      if (this.closedByUser) return;
      if (ev?.code === 4001 && !this.options.token) {
        this.emit('error', new SluiceError('unauthorized', ev.reason || 'unauthorized'));
      }
      this._scheduleReconnect(opened);
    };
    ws.onerror = () => {};  // onclose follows
  }

  _ready(resumed) {
    this._setStatus(resumed ? 'resumed' : 'open');
    if (resumed) this._setStatus('open');
    const queued = this.queue;
    this.queue = [];
    for (const frame of queued) this._send(frame);
    this.emit('_open');
  }

  _scheduleReconnect() {
    if (this.closedByUser || this.timer) return;
    this._setStatus('reconnecting');
    const { initialDelayMs, maxDelayMs, jitter } = this.options.reconnect;
    const base = Math.min(maxDelayMs, initialDelayMs * 2 ** this.attempt);
    const delay = base * (1 - jitter * Math.random());
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      this._open();
    }, delay);
  }

  _startHeartbeat() {
    this._stopHeartbeat();
    const every = this.options.heartbeatMs;
    if (!every) return;
    this._lastHeard = Date.now();
    this.heartbeat = setInterval(() => {
      const quiet = Date.now() - this._lastHeard;
      if (quiet > 2 * every) {
        // No pong, no frame: the line is dead even if the socket does not know.
        const ws = this.ws;
        this.ws = null;
        this._stopHeartbeat();
        try { ws?.close(4000, 'heartbeat'); } catch { /* already closing */ }
        this._scheduleReconnect();
      } else if (quiet > every / 2) {
        this._send({ type: 'ping', request_id: nextRequestId() });
      }
    }, every / 2);
    this.heartbeat.unref?.();
  }

  _stopHeartbeat() {
    clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  _send(frame) {
    if (!this.ws || this.ws.readyState !== 1) {
      this.queue.push(frame);
      return;
    }
    this.ws.send(JSON.stringify(frame));
  }

  /** Sends once the connection is open and every session has resumed. */
  _sendWhenOpen(frame) {
    if (this.status === 'open') this._send(frame);
    else this.queue.push(frame);
  }

  _submit(session, frame) {
    if (session.id) frame.session_id = session.id;
    this.byRequest.set(frame.request_id, session);
    this._sendWhenOpen(frame);
  }

  _resume(s) {
    const request_id = nextRequestId();
    this.byRequest.set(request_id, s);
    this._send({ type: 'resume', session_id: s.id, offset: s.offset, resume_token: s.resumeToken, request_id });
  }

  _resumeSettled(s) {
    s.resuming = false;
    if (this.resumesLeft?.delete(s) && this.resumesLeft.size === 0) this._ready(this._resumedStatus);
  }

  _forget(s) {
    this.sessions.delete(s);
    this._resumeSettled(s);
  }

  _saved(s) {
    this.emit('saved', s, s.state());
  }

  _frame(f) {
    const byRequest = f.request_id ? this.byRequest.get(f.request_id) : undefined;
    switch (f.type) {
      case 'session': {
        const s = byRequest;
        if (!s) return;
        s.id = f.session_id;
        s.resumeToken = f.resume_token;
        s.emit('session', f);
        this._saved(s);
        return;
      }
      case 'resumed':
        if (byRequest) {
          this.byRequest.delete(f.request_id);
          this._resumeSettled(byRequest);
        }
        return;
      case 'resume_failed':
        if (byRequest) {
          this.byRequest.delete(f.request_id);
          const err = new SluiceError('resume_failed', `${f.reason}: ${f.message ?? ''}`, f);
          byRequest.emit('resume_failed', err);
          if (byRequest.running || byRequest.pending) byRequest._refused(err);
          this._forget(byRequest);
        }
        return;
      case 'pong':
      case 'ready':
        return;
      case 'error':
        if (f.offset === undefined) {
          // A refused message: the turn that sent it never started.
          const err = new SluiceError(f.code, f.message, f);
          if (byRequest && byRequest.pending?.requestId === f.request_id) byRequest._refused(err);
          else this.emit('error', err);
          return;
        }
        break;
      default:
        break;
    }
    if (!f.session_id) return;
    for (const s of this.sessions) {
      if (s.id === f.session_id) {
        s._event(f);
        return;
      }
    }
  }
}

export default SluiceClient;
