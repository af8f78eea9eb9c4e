// Types for sluice.mjs, the Sluice JavaScript client SDK (protocol v1).

export type Status = 'idle' | 'connecting' | 'open' | 'reconnecting' | 'resumed' | 'closed';

export interface ReconnectOptions {
  /** First delay after a drop, in ms (default 250). */
  initialDelayMs?: number;
  /** Longest delay, in ms (default 10000). */
  maxDelayMs?: number;
  /** Fraction of each delay taken off at random, 0 to 1 (default 0.5). */
  jitter?: number;
}

export interface ClientOptions {
  /** ws:// or wss:// URL of the gateway's /v1/ws endpoint. */
  url: string;
  /** A JWT or API key, or a function returning one (called at every connect). */
  token?: string | (() => string | Promise<string>);
  /** The WebSocket implementation: globalThis.WebSocket by default; in Node, `ws`. */
  WebSocket?: unknown;
  reconnect?: ReconnectOptions;
  /** Ping after this long without a frame; reconnect after twice as long (default 15000; 0: off). */
  heartbeatMs?: number;
  /** Ask the gateway to merge deltas within this many ms (0 to 1000). */
  coalesceMs?: number;
}

export interface SavedSession {
  id: string | null;
  resumeToken: string | null;
  /** The last offset delivered to the application. */
  offset: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface SendOptions {
  params?: { temperature?: number; top_p?: number; max_tokens?: number; stop?: string | string[]; seed?: number };
  model?: string;
  traceparent?: string;
}

interface Frame {
  type: string;
  session_id: string;
  offset: number;
}
export interface DeltaEvent extends Frame { type: 'delta'; text: string }
export interface ToolCallEvent extends Frame { type: 'tool_call'; id: string; name: string; plugin: string; arguments: unknown }
export interface ToolResultEvent extends Frame {
  type: 'tool_result'; id: string; name: string; plugin: string; ok: boolean; result?: unknown; error?: string;
}
export interface SourcesEvent extends Frame { type: 'sources'; items: { title: string; url: string; snippet?: string }[] }
export interface ModerationEvent extends Frame { type: 'moderation'; action: 'redact' | 'stop'; reason: string; plugin: string }
export interface DoneEvent extends Frame {
  type: 'done';
  finish_reason: 'stop' | 'length' | 'cancelled' | 'error' | 'content_filter' | string;
  usage?: { prompt_tokens: number; completion_tokens: number };
  /** The turn's whole text as delivered. */
  text: string;
}

export class SluiceError extends Error {
  /** The gateway's error code (docs/protocol.md), or 'resume_failed'. */
  code: string;
  frame?: Record<string, unknown>;
  retryAfterMs?: number;
}

export class Session {
  readonly id: string | null;
  readonly offset: number;
  readonly running: boolean;
  /** The running (or last) turn's text so far. */
  readonly text: string;
  /** What to store to resume this session later (e.g. after a page reload). */
  state(): SavedSession;
  /** Starts a turn; resolves with its done event, rejects if the gateway refuses it. */
  send(input: string | { messages: ChatMessage[] }, options?: SendOptions): Promise<DoneEvent>;
  /** Stops the running turn (done with finish_reason 'cancelled'). */
  cancel(): void;
  /** Forgets the session here; it stays resumable on the gateway. */
  close(): void;
  on(event: 'delta', fn: (e: DeltaEvent) => void): this;
  on(event: 'tool_call', fn: (e: ToolCallEvent) => void): this;
  on(event: 'tool_result', fn: (e: ToolResultEvent) => void): this;
  on(event: 'sources', fn: (e: SourcesEvent) => void): this;
  on(event: 'moderation', fn: (e: ModerationEvent) => void): this;
  on(event: 'done', fn: (e: DoneEvent) => void): this;
  on(event: 'error' | 'resume_failed', fn: (e: SluiceError) => void): this;
  on(event: 'session', fn: (e: { session_id: string; resume_token: string }) => void): this;
  off(event: string, fn: (...args: any[]) => void): this;
  once(event: string, fn: (...args: any[]) => void): this;
}

export class SluiceClient {
  constructor(options: ClientOptions);
  readonly status: Status;
  /** Opens the connection; resolves once it is open. */
  connect(): Promise<void>;
  /** A new session, or a saved one to resume. */
  session(saved?: SavedSession): Session;
  /** Closes for good; sessions stay resumable on the gateway. */
  close(): void;
  on(event: 'status', fn: (s: Status) => void): this;
  on(event: 'error', fn: (e: SluiceError) => void): this;
  on(event: 'saved', fn: (session: Session, state: SavedSession) => void): this;
  off(event: string, fn: (...args: any[]) => void): this;
  once(event: string, fn: (...args: any[]) => void): this;
}

export default SluiceClient;
