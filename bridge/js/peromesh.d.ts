// Types for the PeroMesh JS SDK (peromesh.js) and its wire codec (wire.js).

export const PROTOCOL_VERSION: 1;
export const SDK_VERSION: string;

/** The Gateway Envelope in proto3 JSON shape (int64 as number, bytes as Uint8Array). */
export interface Envelope {
  id?: string;
  sourceId?: string;
  targetId?: string; // "master" | "broadcast" | a node id
  timestamp?: number;
  traceId?: string;
  heartbeat?: { seq?: number };
  hello?: { token?: string; deviceName?: string; clientVersion?: string; platform?: string; capabilities?: string[];
    protocolVersion?: number; reminderAcks?: boolean; voice?: string };
  register?: { capabilities?: Capability[] };
  welcome?: Welcome;
  request?: { actionName?: string; params?: Record<string, string> };
  response?: ActionResponse;
  stream?: {
    streamId?: string; data?: Uint8Array; isEnd?: boolean; contentType?: string; seq?: number; turnId?: string;
  };
}

export interface Capability {
  name: string; description?: string; params?: string[]; paramsSchemaJson?: string;
  /** Refused by the hub unless the core allows it by name (--allow-dangerous). */
  dangerous?: boolean;
}

export interface Welcome {
  sessionId: string;
  protocolVersion: number;
  resumed?: boolean;
  nodeId: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  resumeGraceMs: number;
  historyTurns?: number;
  maxFrameBytes: number;
  serverVersion: string;
}

export interface ActionResponse { requestId: string; status?: number; data?: string; errorMsg?: string; code?: string }

export function encodeBinary(envelope: Envelope): Uint8Array;
export function decodeBinary(data: ArrayBuffer | Uint8Array): Envelope;
export function encodeText(envelope: Envelope): string;
export function decodeText(text: string): Envelope;
export function payloadOf(envelope: Envelope): keyof Envelope | undefined;

export interface ClientOptions {
  /** e.g. "ws://127.0.0.1:8765/ws" */
  url: string;
  /** The mesh access token. */
  token: string;
  /** Stable per device: reconnects with the same id resume the dialog session. */
  deviceId: string;
  deviceName?: string;
  platform?: string;
  capabilities?: string[];
  requestTimeoutMs?: number;
  /** The voice answers are spoken in (hello.voice: a voices() name such as "en-gb"); empty: the best per language. */
  voice?: string;
  /**
   * hello.reminderAcks (default true): the SDK sends `reminder_ack {cursor}` once the `reminder_trigger`
   * handlers returned, and drops a cursor it has shown already; the mesh re-sends what was not acknowledged
   * at the next connect. false: the bridge acknowledges each trigger once it wrote it to the socket.
   */
  reminderAcks?: boolean;
  backoff?: { initialMs: number; maxMs: number; factor: number };
  WebSocket?: typeof WebSocket;
}

export interface StoredTurn {
  turn_id: string; turn_index: number; user_text: string; assistant_text: string;
  interrupted: boolean; heard_text: string; abandoned: boolean; create_time: string;
}

export interface HistoryPage { turns: StoredTurn[]; next_page_token: string }

/** A voice the mesh can speak in (voices:list); `name` is what options.voice takes. */
export interface Voice { name: string; engine: string; languages: string[]; display_name: string; neural: boolean }

export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A streamed event or routed action: its params are strings; turn events carry params.turn_id. */
export interface ActionEvent {
  name: string;
  params: Record<string, string>;
  turnId: string;
  source: string;
  envelope: Envelope;
}

export interface AudioChunkEvent { turnId: string; seq: number; isEnd: boolean; contentType: string; pcm: Uint8Array }

export interface EventMap {
  connection: { state: ConnectionState; attempt: number; code?: number; reason?: string; delayMs?: number;
    sessionId?: string; resumed?: boolean };
  welcome: Welcome;
  turn: { turnId: string };
  interrupt: { turnId: string };
  heartbeat: { seq: number; rttMs: number };
  response: ActionResponse;
  state_update: ActionEvent; // params.state: idle | listening | thinking | speaking | interrupted
  assistant_delta: ActionEvent; // params.text_delta
  assistant_final: ActionEvent; // params.text, params.interrupted, params.heard_text
  audio_begin: ActionEvent; // params.mime, sample_rate, channels, format
  audio_chunk: AudioChunkEvent;
  audio_end: ActionEvent;
  audio_cancel: ActionEvent;
  metrics: ActionEvent; // params.t_first_delta_ms, t_first_audio_ms, t_total_ms, t_interrupt_ms, tokens
  transcription: ActionEvent;
  tool_call: ActionEvent;
  tool_result: ActionEvent;
  voice_update: ActionEvent; // PeroCore compatibility (only for hello.protocolVersion 0; the SDK sends 1)
  text_response: ActionEvent; // PeroCore compatibility (idem)
  error: { params: { code: string; message: string } } | ActionEvent;
  /** A reminder fell due (or was missed while offline): params id, content, due_time, fired_time, status
   * ("fired" | "missed"), cursor, target_devices, replayed ("true" when sent again after a reconnect).
   * Each cursor reaches the handlers once; it is acknowledged when they return. */
  reminder_trigger: ActionEvent;
  /** Any other action routed to this node (broadcasts such as reminder_trigger, task:update, system_stats). */
  action: ActionEvent;
  [name: string]: unknown;
}

export class PeroMeshClient {
  constructor(options: ClientOptions);
  readonly connectionState: ConnectionState;
  readonly welcome: Welcome | null;
  readonly currentTurn: string;
  readonly attempt: number;
  on<K extends keyof EventMap>(event: K | "*", handler: (payload: EventMap[K], event: string) => void): () => void;
  off(event: string, handler: (...args: never[]) => void): void;
  /** Resolves with the first welcome; keeps reconnecting afterwards until close(). */
  connect(): Promise<Welcome>;
  /** Connect again at once (after changing options.voice); the session resumes. */
  reconnect(): Promise<Welcome>;
  close(): void;
  /** An action with a response; rejects on status 1 (error.code set), timeout or disconnect. */
  request(target: string, action: string, params?: Record<string, unknown>,
          options?: { timeoutMs?: number }): Promise<ActionResponse>;
  send(target: string, action: string, params?: Record<string, unknown>): void;
  sendText(text: string): Promise<{ turnId: string }>;
  /** One page of this device's stored conversation (history:list), turns oldest first. */
  history(options?: { pageSize?: number; pageToken?: string }): Promise<HistoryPage>;
  /** The installed voices (voices:list), preferred first; `languages` keeps those speaking one of them. */
  voices(options?: { languages?: string[] }): Promise<{ voices: Voice[] }>;
  /** `playedMs`: how much of the turn's audio was played, so the mesh stores what was really heard. */
  interrupt(turnId?: string, options?: { playedMs?: number | null }): Promise<ActionResponse | void>;
  sendAudio(source: MediaStream | AsyncIterable<Int16Array | ArrayBuffer>,
            options?: { sampleRate?: number; chunkBytes?: number }): { streamId: string; stop(): Promise<void> };
}
