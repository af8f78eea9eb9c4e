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
/**
 * A source card. Knowledge-base passages (origin 'retrieval') have every
 * field; a tool's cards (origin 'tool', e.g. an order) have title, url and
 * snippet.
 */
export interface SourceItem {
  /** 'passage' for a knowledge-base passage. */
  kind?: 'passage' | string;
  /** The passage's stable id, such as 'en/shipping#international-delivery'. */
  id?: string;
  title: string;
  /** May be empty. */
  url: string;
  /** A passage's whole text, as the model read it. */
  snippet?: string;
  /** The retriever's score; higher is better. */
  score?: number;
  /** What the retriever adds, such as { path, heading, lang } for knowledge_base. */
  metadata?: { path?: string; heading?: string; lang?: string; [key: string]: unknown };
}
export interface SourcesEvent extends Frame {
  type: 'sources';
  /** 'retrieval': the turn's passages, once, before its first delta; 'tool': a tool result's cards. */
  origin: 'retrieval' | 'tool' | string;
  /** With origin 'tool': the tool call's id. */
  id?: string;
  items: SourceItem[];
}
/** A citation marker in an answer: `[2]`, or a group such as `[1, 3]`. */
export interface Citation<T = SourceItem> {
  /** Where the marker is: text.slice(start, end) === marker. */
  start: number;
  end: number;
  marker: string;
  /** The cited numbers that have an item (1 is items[0]), in marker order. */
  numbers: number[];
  /** Those items. */
  items: T[];
}
/**
 * The citation markers `[n]`, `[1][3]` (two markers) and `[1, 3]` in an
 * answer's text, mapped to the turn's sources (`[n]` is items[n - 1]). A
 * number with no item is not a citation; a marker with none is left out.
 */
export function citations<T = SourceItem>(text: string, items: readonly T[]): Citation<T>[];
export interface ModerationEvent extends Frame { type: 'moderation'; action: 'redact' | 'stop'; reason: string; plugin: string }
export interface DoneEvent extends Frame {
  type: 'done';
  finish_reason: 'stop' | 'length' | 'cancelled' | 'error' | 'content_filter' | string;
  usage?: { prompt_tokens: number; completion_tokens: number };
  /** The turn's whole text as delivered. */
  text: string;
  /** The turn's knowledge-base passages (its retrieval sources event's items; [] when none). */
  sources: SourceItem[];
  /** The citation markers in text: citations(text, sources). */
  citations: Citation[];
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
  /**
   * The running (or last) turn's knowledge-base passages, which its [n]
   * markers cite: set by the turn's retrieval sources event, before its first
   * delta ([] when there is none).
   */
  readonly sources: SourceItem[];
  /** The citation markers in text so far: citations(text, sources). */
  citations(): Citation[];
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
