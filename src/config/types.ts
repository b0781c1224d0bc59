/**
 * The validated configuration. Plain data only (strings, numbers, arrays), so the supervisor
 * can hand it to workers over IPC unchanged; workers compile it into matchers themselves.
 * Durations are milliseconds. Every object is frozen once validated.
 */
export interface Config {
  /** The file it was read from, for messages. */
  readonly file: string;
  /** Translation prefixes, canonical form such as `2001:db8:5999::/96`. */
  readonly prefixes: readonly string[];
  /** `manage`: faithd6 adds/removes `local PREFIX dev lo`; `external`: the operator does. */
  readonly route: 'manage' | 'external';
  readonly services: readonly ServiceConfig[];
  readonly rules: readonly RuleConfig[];
  readonly timeouts: TimeoutsConfig;
  readonly limits: LimitsConfig;
  readonly log: LogConfig;
  /**
   * The user workers run as when faithd6 starts as root; null picks `faithd6` if that user
   * exists, else `nobody`. Code handling untrusted traffic never runs as root.
   */
  readonly user: string | null;
  /** Where the pidfile and the control socket live. */
  readonly runtimeDirectory: string;
}

export interface ServiceConfig {
  /** The port clients dial on the translated addresses. */
  readonly port: number;
  /** The IPv4 server's port; defaults to `port`. */
  readonly backendPort: number;
  /** Worker processes sharing this port's listener. */
  readonly workers: number;
}

export interface RuleConfig {
  readonly action: 'permit' | 'deny';
  /** Source IPv6 networks, canonical `addr/len`; `::/0` when the rule has no `from`. */
  readonly from: readonly string[];
  /** Destination IPv4 networks, canonical `a.b.c.d/len`. */
  readonly to: readonly string[];
  /** Service ports the rule applies to; empty means every port. */
  readonly ports: readonly number[];
}

export interface TimeoutsConfig {
  readonly connect: number;
  readonly idle: number;
  readonly halfClosed: number;
  readonly drain: number;
}

/**
 * Limits, each enforced by every worker on its own connections (a port with N workers admits up
 * to N times these). A connection over a limit is reset at once and counted; nothing is queued.
 */
export interface LimitsConfig {
  /** Concurrent relayed connections one worker holds. */
  readonly connectionsPerWorker: number;
  /** Concurrent connections from one client source (its /sourcePrefixLength). */
  readonly connectionsPerSource: number;
  /** How client addresses are grouped into sources: an IPv6 attacker owns a whole /64. */
  readonly sourcePrefixLength: number;
  /** Connections still waiting for their backend's SYN-ACK. */
  readonly pendingConnects: number;
  /** Of those, from one source. */
  readonly pendingConnectsPerSource: number;
  /** Concurrent connections to one IPv4 backend address, from all sources. */
  readonly connectionsPerBackend: number;
  /** New connections per second from one source (a token bucket holding two seconds' worth); 0: no limit. */
  readonly newConnectionsPerSecond: number;
}

export interface LogConfig {
  readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

/** Defaults, in one place. */
export const DEFAULTS = {
  route: 'manage',
  workers: 1,
  timeouts: {
    connect: 5_000,
    idle: 2 * 3600_000 + 4 * 60_000, // RFC 5382 REQ-5: at least 2 h 4 min for established TCP
    halfClosed: 4 * 60_000,
    drain: 30_000,
  },
  limits: {
    connectionsPerWorker: 4096,
    connectionsPerSource: 512,
    sourcePrefixLength: 64,
    pendingConnects: 1024,
    pendingConnectsPerSource: 64,
    connectionsPerBackend: 2048,
    newConnectionsPerSecond: 100,
  },
  log: { level: 'info' },
  user: null,
  runtimeDirectory: '/run/faithd6',
} as const satisfies Omit<Config, 'file' | 'prefixes' | 'services' | 'rules'> & { workers: number };

/** What loading a file yields: the config, and warnings that do not stop it from running. */
export interface LoadedConfig {
  readonly config: Config;
  readonly warnings: readonly string[];
}
