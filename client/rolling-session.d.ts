// Type declarations for rolling-session.js, the rolling-session browser client.

/** `GET {prefix}/status` (and `POST {prefix}/refresh`, which adds `pending_confirmation`). */
export interface SessionStatus {
  active: boolean;
  user_id: string;
  expires_in_ms: number;
  idle_expires_in_ms: number;
  idle_timeout_ms: number;
  absolute_expires_in_ms: number;
  /** 0 when a renewal is allowed now, null when it never will be. */
  renewal_allowed_in_ms: number | null;
  refresh_recommended: boolean;
  renewals: number;
  request_count: number;
  rotations: number;
  /** Server clock, ms since the epoch. */
  server_timestamp: number;
  pending_confirmation?: boolean;
}

/** The body posted to `POST {prefix}/telemetry`. */
export interface TelemetrySample {
  /** Client clock, ms since the epoch. */
  timestamp: number;
  /** Operations (same-origin requests and page loads) counted since the session began. */
  operation_count: number;
  /** Entropy (0..1) of timer and request-time jitter; never personal data. */
  client_entropy: number;
  /** The `server_timestamp` of the last answer, for round-trip measurement. */
  echo_server_timestamp?: number;
}

/** The answer of `POST {prefix}/telemetry`. */
export interface TelemetryAdvice {
  server_timestamp: number;
  /** Server clock minus client clock, plus the minimum one-way delay (ms). */
  skew_ms: number;
  /** Rate of the server clock relative to the client's (ppm). */
  drift_ppm: number;
  /** Upper bound on the round trip; `null` before any echoed timestamp. */
  rtt_ms: number | null;
  predicted_operation_count: number;
  horizon_ms: number;
  /** 0..1 */
  anomaly_score: number;
  refresh: boolean;
  refresh_in_ms: number;
}

export type EndReason =
  | 'logout'
  | 'idle_timeout'
  | 'session_expired'
  | 'missing_token'
  | 'malformed_token'
  | 'session_not_found'
  | 'token_reused'
  | 'session_revoked'
  | 'context_mismatch'
  | 'token_ahead';

export interface ExpiredDetail {
  reason: EndReason;
  /** What noticed: 'timer', 'user', 'check', 'keepalive', 'fetch', 'telemetry', 'refresh', ... */
  source: string;
  /** True when another tab ended the session and told this one. */
  remote: boolean;
}

export interface WarningDetail {
  kind: 'idle' | 'expiry';
  remainingMs: number;
}

export interface TelemetryDetail {
  sent: TelemetrySample;
  advice: TelemetryAdvice;
}

export interface RefreshResult {
  ok: true;
  /** `POST {prefix}/refresh/confirm` validated the renewed cookie (idempotent; requests still in flight with the old cookie stay within its grace). */
  confirmed: boolean;
  /** Requests of this tab that were in flight before the refresh, awaited so that it presents the live token. */
  drained: number;
  /** Other tabs that had requests in flight and were awaited. */
  tabs: number;
  status: SessionStatus;
}

export interface RefreshRefusal {
  ok: false;
  status?: number;
  error?: string;
  retryAfterMs?: number;
}

export interface TimesDetail {
  expiresInMs: number;
  idleExpiresInMs: number;
}

export interface RollingSessionOptions {
  /** Where the session routes are mounted. Default '/session'. */
  prefix?: string;
  /** Idle logout after this long without activity in any tab; the server's `idle_timeout_ms` caps it. Default 30 min. */
  idleTimeoutMs?: number;
  /** The warning fires this long before idle logout or expiry. Default 60 s. */
  warnBeforeMs?: number;
  /** Backup status check interval (catches server-side revocation). Default 15 min. */
  checkIntervalMs?: number;
  /** Telemetry interval bounds; it adapts between them. 0 turns telemetry off. Defaults 5 s and 30 s. */
  telemetryMinMs?: number;
  telemetryMaxMs?: number;
  /** Activity events are handled at most this often. Default 200 ms. */
  throttleMs?: number;
  /** Refresh this long before expiry once the server allows renewal. Default 5 min. */
  refreshLeadMs?: number;
  /** Longest wait for requests in flight before a refresh. Default 30 s. */
  drainTimeoutMs?: number;
  /** Longest wait for `onAutoSave`. Default 5 s. */
  autoSaveTimeoutMs?: number;
  /** POSTed to when this client ends the session (idle, expiry, logout()). Default none. */
  logoutUrl?: string | null;
  /** BroadcastChannel and Web Lock name. Default 'rolling-session'. */
  channel?: string;
  /** Replace globalThis.fetch with the counting, tracking client.fetch. Default true. */
  patchFetch?: boolean;
  /** Default: mousedown, mousemove, keypress, scroll, touchstart, click, visibilitychange. */
  activityEvents?: string[];

  onExpired?(detail: ExpiredDetail): void;
  onWarning?(detail: WarningDetail): void;
  onWarningcleared?(detail: {}): void;
  /** Called before logout (awaited up to autoSaveTimeoutMs). */
  onAutoSave?(reason: EndReason): void | Promise<void>;
  onStart?(status: SessionStatus): void;
  onStatus?(status: SessionStatus): void;
  onTimes?(detail: TimesDetail): void;
  onTelemetry?(detail: TelemetryDetail): void;
  onRefresh?(detail: RefreshResult | RefreshRefusal): void;
  onLeader?(leader: true): void;
  onError?(detail: { source: string; error: string }): void;
}

export interface RollingSessionEventMap {
  expired: CustomEvent<ExpiredDetail>;
  warning: CustomEvent<WarningDetail>;
  warningcleared: CustomEvent<{}>;
  start: CustomEvent<SessionStatus>;
  status: CustomEvent<SessionStatus>;
  times: CustomEvent<TimesDetail>;
  telemetry: CustomEvent<TelemetryDetail>;
  refresh: CustomEvent<RefreshResult | RefreshRefusal>;
  leader: CustomEvent<true>;
  error: CustomEvent<{ source: string; error: string }>;
}

export interface CallResult {
  ok: boolean;
  status: number;
  data: any;
  /** performance.now() halfway through the request. */
  mid: number;
}

export declare const DEFAULTS: Readonly<Required<Omit<RollingSessionOptions, `on${string}`>>>;

/** True for the `error` reasons that mean the session is gone. */
export declare function isSessionError(reason: string | undefined): boolean;

/** Shannon entropy (0..1) of the 0.1 ms digits of timing jitter samples. */
export declare function jitterEntropy(samples: number[]): number;

export declare class RollingSession extends EventTarget {
  constructor(options?: RollingSessionOptions);
  readonly o: Required<RollingSessionOptions>;
  readonly state: 'inactive' | 'active' | 'ended';
  /** This tab runs the timers, telemetry, checks and refreshes for all tabs. */
  readonly leader: boolean;
  readonly status: SessionStatus | null;
  readonly advice: TelemetryAdvice | null;
  /** Operations counted since the session began, across tabs and page loads. */
  readonly ops: number;

  /** Installs listeners (once) and reads the status; null when there is no session. `fresh` after a login resets the operation count. */
  start(options?: { fresh?: boolean }): Promise<SessionStatus | null>;
  /** Removes listeners, timers, the fetch wrapper and leadership. */
  stop(): void;
  /** fetch() that counts the operation, tracks it in flight and reads the session headers. */
  fetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  /** GET status now; a session error ends the session everywhere. */
  check(source?: string): Promise<SessionStatus | null>;
  /** Refresh: wait for requests in flight (all tabs), renew (retried for a while on 409 `token_not_live`), confirm. */
  refresh(): Promise<RefreshResult | null>;
  /** Auto-save, POST logoutUrl, end the session in every tab. */
  logout(): Promise<void>;
  remaining(): { idleMs: number; expiresMs: number | null; serverIdleMs: number | null };
  entropy(): number;
  /** A request to `{prefix}{path}`; a session error ends the session. */
  call(method: string, path: string, body?: unknown, source?: string): Promise<CallResult | undefined>;

  addEventListener<K extends keyof RollingSessionEventMap>(
    type: K,
    listener: (ev: RollingSessionEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
}
