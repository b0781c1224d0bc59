import net from 'node:net';
import { AccessPolicy, hostIPv4Addresses } from '../policy/access.js';
import { parseIPv4, TranslationPrefix } from '../net/address.js';
import type { Config, ServiceConfig, TimeoutsConfig } from '../config/types.js';
import { CONNECT_BUCKETS, DURATION_BUCKETS, emptyStats, observe, type FromWorker, type ToWorker, type WorkerStats } from './messages.js';
import { Admission, type Ticket } from '../policy/limits.js';
import { openDescriptors, openFileLimit } from '../system/descriptors.js';
import { LogLimiter } from './log-limiter.js';
import { SystemError } from '../errors.js';
import { workerTitle } from '../system/proc.js';
import { createLogger, lineWriter, type CloseFields, type Logger } from '../log.js';
import { decide, type Permit, type Translator } from '../relay/decide.js';
import { dial, KEEPALIVE_DELAY } from '../relay/dial.js';
import { proxyHeader, type ProxyProtocol } from '../relay/proxy-protocol.js';
import { boundPort, Listener, type TcpHandle } from '../relay/listener.js';
import { CONNECT_FAILURES, Relay, reset, type EndReason, type RelayHooks, type RelayPeers, type RelayResult } from '../relay/relay.js';
import { choosePlane, copyMode, loadNative, NativePlane, pipeBudget, type NativeHost, type PlaneChoice } from '../relay/native.js';
import { listenBacklog } from '../system/somaxconn.js';
import { FtpSession, type LogFields, type SessionHost } from '../ftp/session.js';
import { withdrawOverLink } from '../announce/bird.js';

/**
 * Descriptors kept free beyond two per admitted connection (its two sockets; an FTP data
 * listener, admitted as its connection-to-be, holds one): for the sockets accepted only to be
 * refused.
 */
const DESCRIPTOR_HEADROOM = 16;
/** How often the descriptor limit is read again (prlimit can change it under a running worker). */
const DESCRIPTOR_CHECK = 1_000;

/** What one worker holds: compiled from the config on start and on every reload. */
interface Compiled {
  readonly service: ServiceConfig;
  /** What the accept decision looks at. */
  readonly translator: Translator;
  /** The relay's timeouts, and the drain timeout. */
  readonly timeouts: TimeoutsConfig;
  /** The address connections to the backend come from; null: the kernel's choice. */
  readonly source: string | null;
  /** The same as a 32-bit number for the native data plane; 0: the kernel's choice. */
  readonly sourceIPv4: number;
  readonly proxyProtocol: ProxyProtocol;
  readonly protocol: 'tcp' | 'ftp';
}

/** A connection accepted and admitted: what it is relayed with. */
interface Admitted {
  readonly decision: Permit;
  readonly ticket: Ticket;
  readonly peers: RelayPeers;
  /** The PROXY protocol header for the backend, when the service sends one. */
  readonly header: Buffer | undefined;
}

/** The worker's record of a connection the native data plane relays. */
interface NativeRecord {
  readonly peers: RelayPeers;
  readonly ticket: Ticket;
}

/** What the owner of a relay does with its log fields once it has closed; `log` writes the usual line. */
type Reporter = (fields: LogFields, result: RelayResult, log: (fields: LogFields) => void) => void;

function compile(config: Config, port: number): Compiled {
  const service = config.services.find((s) => s.port === port);
  if (!service) throw new Error(`port ${port} is not in ${config.file}`);
  const prefixes = config.prefixes.map((p) => TranslationPrefix.parse(p));
  const policy = new AccessPolicy(config.rules, prefixes, hostIPv4Addresses());
  return {
    service,
    translator: { port: service.port, backendPort: service.backendPort, prefixes, policy },
    timeouts: config.timeouts,
    source: service.source ?? config.source,
    sourceIPv4: parseIPv4(service.source ?? config.source ?? '') ?? 0,
    proxyProtocol: service.proxyProtocol,
    protocol: service.protocol,
  };
}

/**
 * One service port: accepts on the listening socket the supervisor bound, translates the
 * dialled address, checks the rules and relays. Runs in its own process so that a crash
 * here never touches another port.
 */
export class Worker {
  private compiled: Compiled;
  private readonly log: Logger;
  /** The `relay closed` line of a connection that reached its backend. */
  private readonly closeLine: (fields: CloseFields) => void;

  /** The worker's logger, for its process's own lines. */
  get logger(): Logger {
    return this.log;
  }
  private listener: Listener | undefined;
  /** The native data plane and the connections it relays, when this worker uses it. */
  private native: NativePlane<NativeRecord> | undefined;
  /** Open relays (JavaScript data plane) and the admission slots each holds. */
  private readonly relays = new Map<Relay, Ticket>();
  /** Relays whose log line is someone else's to write: an FTP session's control and data connections. */
  private readonly reporters = new Map<Relay, Reporter>();
  /** Active-mode FTP data relays: their accepted socket is the server's, so up and down are swapped. */
  private readonly reversed = new Set<Relay>();
  private readonly admission: Admission;
  /** Lines a flood could produce: denials, limit hits, connect and accept failures. */
  private readonly limited: LogLimiter;
  private draining = false;
  /** Counters; bytes here are those of closed connections (stats() adds the open ones). */
  private readonly counts: WorkerStats = emptyStats();

  /** What a reload does not change: the data plane and the listen backlog (0: net.core.somaxconn). */
  private readonly configured: Pick<Config, 'dataPlane' | 'listenBacklog'>;

  constructor(config: Config, port: number, log: Logger) {
    this.compiled = compile(config, port);
    this.configured = { dataPlane: config.dataPlane, listenBacklog: config.listenBacklog };
    this.log = log;
    this.closeLine = lineWriter(log, 'relay closed');
    this.limited = new LogLimiter(log);
    this.admission = new Admission(config.limits);
  }

  /**
   * Keeps admission within the descriptors this process may open: two per relay, above those
   * open when it started listening, a little headroom and the native plane's splice pipes.
   */
  private watchDescriptors(): void {
    const baseline = openDescriptors();
    const update = (): void => {
      const limit = openFileLimit();
      if (limit === undefined) return;
      // The native plane's splice pipes come out of the same descriptors, two per pair.
      const pipes = this.native?.copy === 'splice' ? pipeBudget(Math.min(limit, 1 << 20)) : 0;
      this.native?.pipeLimit(pipes);
      this.admission.setDescriptorCap(Math.floor((limit - baseline - DESCRIPTOR_HEADROOM - 2 * pipes) / 2));
    };
    update();
    this.descriptorTimer = setInterval(update, DESCRIPTOR_CHECK);
    this.descriptorTimer.unref();
  }

  private descriptorTimer: NodeJS.Timeout | undefined;

  /**
   * Starts accepting on the bound socket handle received from the supervisor, on the data
   * plane of the config where it can (choosePlane), with the config's listen backlog. Says
   * which data plane it is.
   */
  listen(handle: TcpHandle): PlaneChoice {
    let plane = choosePlane(this.configured.dataPlane, this.compiled.protocol);
    const bound = boundPort(handle);
    if (bound !== this.compiled.service.port) {
      handle.close();
      throw new SystemError('EADDRINUSE', `listening on port ${bound ?? 'none'}, not ${this.compiled.service.port}`);
    }
    const backlog = listenBacklog(this.configured.listenBacklog);
    const addon = plane.dataPlane === 'native' ? loadNative().addon : undefined;
    let native: NativePlane<NativeRecord> | undefined;
    try {
      if (addon !== undefined) native = new NativePlane(addon, this.nativeHost, copyMode());
    } catch (err) {
      // The addon loaded but its plane did not start (no epoll set, no memory): not a reason
      // not to relay either.
      // (The supervisor logs it, once.)
      plane = { dataPlane: 'js', fallback: `the native data plane did not start: ${(err as Error).message}` };
    }
    if (native !== undefined) {
      try {
        native.listen(handle, backlog, KEEPALIVE_DELAY);
      } catch (err) {
        native.close();
        throw err;
      }
      this.native = native;
    } else {
      const listener = new Listener(handle, KEEPALIVE_DELAY, this.onConnection, this.onAcceptError);
      listener.listen(backlog);
      this.listener = listener;
    }
    this.watchDescriptors();
    return plane;
  }

  // An accept error must not kill the worker: the listener goes on (src/relay/listener.ts).
  private readonly onAcceptError = (code: string): void => {
    this.counts.acceptErrors += 1;
    this.limited.info({ err: code }, 'accept failed', `accept failed: ${code}`);
  };

  /** Applies a reloaded config to new connections; established ones keep their settings. */
  reconfigure(config: Config): void {
    this.compiled = compile(config, this.compiled.service.port);
    this.admission.reconfigure(config.limits);
    this.log.level = config.log.level;
  }

  /** Relayed connections open, on either data plane. */
  private get open(): number {
    return this.relays.size + (this.native?.size ?? 0);
  }

  /** Milliseconds open connections may take to finish when the worker stops. */
  get drainTimeout(): number {
    return this.compiled.timeouts.drain;
  }

  /** The counters as of now, open connections' bytes included. */
  stats(): WorkerStats {
    let up = this.counts.up;
    let down = this.counts.down;
    if (this.native !== undefined) {
      const open = this.native.stats();
      up += open.up;
      down += open.down;
    }
    for (const relay of this.relays.keys()) {
      const reversed = this.reversed.has(relay);
      up += (reversed ? relay.backend : relay.client).bytesRead;
      down += (reversed ? relay.client : relay.backend).bytesRead;
    }
    const cpu = process.cpuUsage();
    return {
      ...this.counts,
      active: this.open,
      up,
      down,
      ends: { ...this.counts.ends },
      deniedBy: { ...this.counts.deniedBy },
      limitedBy: { ...this.counts.limitedBy },
      connectSeconds: [...this.counts.connectSeconds],
      durationSeconds: [...this.counts.durationSeconds],
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssBytes: process.memoryUsage.rss(),
    };
  }

  /**
   * Stops accepting, waits for open connections to finish, and at the deadline resets what
   * is left. Resolves once no connection remains.
   */
  drain(deadline: number): Promise<void> {
    this.draining = true;
    this.listener?.close();
    this.native?.unlisten();
    this.logger.info({ open: this.open }, 'stopped accepting; draining');
    clearInterval(this.descriptorTimer);
    this.admission.close();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.open > 0) return;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          for (const relay of this.relays.keys()) relay.stop();
          this.native?.resetAll();
          check();
        },
        Math.max(0, deadline - Date.now()),
      );
      this.afterClose = check;
      check();
    });
  }

  private afterClose: (() => void) | undefined;

  /**
   * The accept decision and admission of one connection, the same on both data planes: the
   * translation and the rules (decide), the limits, and the PROXY protocol header. Undefined
   * when it is refused: counted, logged and `socket` reset (the native plane resets its own).
   */
  private admit(
    socket: net.Socket | undefined,
    dialled: string | undefined,
    dialledPort: number | undefined,
    remote: string | undefined,
    remotePort: number | undefined,
    dialledBits?: bigint,
    remoteBits?: bigint,
  ): Admitted | undefined {
    const { compiled } = this;
    const decision = decide(compiled.translator, dialled, remote, remotePort, dialledPort, dialledBits, remoteBits);
    if (!decision.relay) {
      this.refuse(socket, decision.end, decision.client, decision.fields);
      return undefined;
    }
    const { dst, backend } = decision;
    const ticket = this.draining ? 'draining' : this.admission.admit(decision.source, decision.ipv4);
    if (typeof ticket === 'string') {
      this.refuse(socket, 'limit', decision.client, { dst, backend, reason: ticket });
      return undefined;
    }
    let header: Buffer | undefined;
    if (compiled.proxyProtocol !== 'none') {
      const client = { address: decision.source, text: decision.clientAddress, port: decision.clientPort };
      header = proxyHeader(compiled.proxyProtocol, client, { address: decision.dialled, text: dst, port: decision.dialledPort });
    }
    this.counts.relayed += 1;
    return { decision, ticket, header, peers: { client: decision.client, dst, backend } };
  }

  /** One connection the JavaScript data plane accepted: decide, admit, dial, relay (logged at its close). */
  private readonly onConnection = (socket: net.Socket): void => {
    const admitted = this.admit(socket, socket.localAddress, socket.localPort, socket.remoteAddress, socket.remotePort);
    if (admitted === undefined) return;
    const { compiled } = this;
    const { decision, peers } = admitted;
    const toBackend = dial(decision.backendHost, decision.backendPort, compiled.source);
    const session =
      compiled.protocol === 'ftp'
        ? new FtpSession(
            this.sessionHost,
            {
              clientAddress: decision.clientAddress,
              clientPort: decision.clientPort,
              dst: decision.dst,
              backendHost: decision.backendHost,
              client: decision.client,
            },
            { client: decision.source, dialled: decision.dialled, backend: decision.ipv4 },
          )
        : undefined;
    const relay = new Relay(socket, toBackend, peers, compiled.timeouts, this.hooks, admitted.header, session?.splice);
    this.relays.set(relay, admitted.ticket);
    if (session !== undefined) this.reporters.set(relay, (fields, _result, log) => session.closed(log, fields));
  };

  /** What the native data plane asks of this worker: the same decision, counters and log lines. */
  private readonly nativeHost: NativeHost<NativeRecord> = {
    accepted: (local, localPort, remote, remotePort, localBits, remoteBits) => {
      const admitted = this.admit(undefined, local, localPort, remote, remotePort, localBits, remoteBits);
      if (admitted === undefined) return undefined;
      const { decision, ticket, peers, header } = admitted;
      const { compiled } = this;
      return {
        ipv4: decision.ipv4,
        port: decision.backendPort,
        source: compiled.sourceIPv4,
        timeouts: compiled.timeouts,
        preamble: header,
        token: { peers, ticket },
      };
    },
    established: (record, ms) => this.established(record.ticket, ms),
    closed: (record, result) => this.closed(record.peers, record.ticket, result, undefined),
    acceptFailed: (code) => this.onAcceptError(code),
  };

  /** What FTP sessions ask of this worker: their data connections are admitted and relayed like any. */
  private readonly sessionHost: SessionHost = {
    reserve: (dialled, client, clientPort) => {
      const decision = decide(this.compiled.translator, dialled, client, clientPort);
      if (!decision.relay) {
        this.refuse(undefined, decision.end, decision.client, { ...decision.fields, ftp: 'data' });
        return decision.fields.reason ?? decision.end;
      }
      const ticket = this.admission.admit(decision.source, decision.ipv4);
      if (typeof ticket === 'string') {
        this.refuse(undefined, 'limit', decision.client, { dst: decision.dst, backend: decision.backend, reason: ticket, ftp: 'data' });
        return ticket;
      }
      // A listener waiting for its connection holds a connection's place, not a pending connect's.
      this.admission.established(ticket);
      return ticket;
    },
    release: (ticket) => this.admission.release(ticket as Ticket),
    recheck: (socket, dialled, client, clientPort) => {
      const decision = decide(this.compiled.translator, dialled, client, clientPort);
      if (decision.relay) return true;
      this.refuse(socket, decision.end, decision.client, { ...decision.fields, ftp: 'data' });
      return false;
    },
    relayData: (accepted, dialled, peers, ticket, reversed, closed) => {
      const relay = new Relay(accepted, dialled, peers, this.compiled.timeouts, this.hooks);
      this.relays.set(relay, ticket as Ticket);
      this.counts.relayed += 1;
      if (reversed) this.reversed.add(relay);
      this.reporters.set(relay, closed);
    },
    source: () => this.compiled.source,
    note: (fields, msg) => this.limited.info(fields, msg, msg),
    info: (fields, msg) => this.log.info(fields, msg),
    debug: (fields, msg) => this.log.debug(fields, msg),
  };

  private readonly hooks: RelayHooks = {
    established: (relay) => this.established(this.relays.get(relay), performance.now() - relay.started),
    closed: (relay, result) => this.onRelayClose(relay, result),
  };

  /** A backend answered after `ms`: the connection holds an established place now. */
  private established(ticket: Ticket | undefined, ms: number): void {
    if (ticket) this.admission.established(ticket);
    observe(this.counts.connectSeconds, CONNECT_BUCKETS, ms / 1000);
    this.counts.connectSecondsSum += ms / 1000;
  }

  private onRelayClose(relay: Relay, closed: RelayResult): void {
    const ticket = this.relays.get(relay);
    this.relays.delete(relay);
    const result = this.reversed.delete(relay) ? reverse(closed) : closed;
    const reporter = this.reporters.get(relay);
    this.reporters.delete(relay);
    this.closed(relay.peers, ticket, result, reporter);
  }

  /** A relayed connection closed, on either data plane: its place, its counters, its log line. */
  private closed(peers: RelayPeers, ticket: Ticket | undefined, result: RelayResult, reporter: Reporter | undefined): void {
    if (ticket) this.admission.release(ticket);
    this.counts.up += result.up;
    this.counts.down += result.down;
    bump(this.counts.ends, result.end);
    observe(this.counts.durationSeconds, DURATION_BUCKETS, result.ms / 1000);
    this.counts.durationSecondsSum += result.ms / 1000;
    // Spelled out, not spread: with `{ ...peers, up, … }` here, perf showed V8 missing its
    // inline caches (Runtime_DefineNamedOwnIC_Miss, map transitions) on every connection.
    const fields = {
      client: peers.client,
      dst: peers.dst,
      backend: peers.backend,
      up: result.up,
      down: result.down,
      ms: result.ms,
      end: result.end,
      error: result.error,
    };
    const connectFailed = CONNECT_FAILURES.has(result.end);
    if (connectFailed) this.counts.connectFailed += 1;
    if (reporter === undefined) {
      if (connectFailed) this.limited.info(fields, 'relay closed', result.end);
      else this.closeLine(fields);
    } else {
      reporter(fields, result, (line) => {
        if (connectFailed) this.limited.info(line, 'relay closed', result.end);
        else this.log.info(line, 'relay closed');
      });
    }
    this.afterClose?.();
  }

  /** Counts and logs a refused connection, and resets its socket (none: a data connection refused before it came). */
  private refuse(
    socket: net.Socket | undefined,
    end: 'not translated' | 'denied' | 'limit',
    client: string,
    fields: { readonly reason?: string; readonly [field: string]: unknown },
  ): void {
    if (end === 'denied') {
      this.counts.denied += 1;
      bump(this.counts.deniedBy, fields.reason ?? 'unknown');
    } else if (end === 'limit') {
      this.counts.limited += 1;
      bump(this.counts.limitedBy, fields.reason ?? 'unknown');
    } else {
      this.counts.notTranslated += 1;
    }
    bump(this.counts.ends, end);
    if (socket !== undefined) reset(socket);
    this.limited.info({ client, ...fields, up: 0, down: 0, ms: 0, end }, 'relay closed', fields.reason === undefined ? end : `${end}: ${fields.reason}`);
  }
}

/** The result of a relay whose accepted socket was the server's, from the client's side. */
function reverse(result: RelayResult): RelayResult {
  const swap: Partial<Record<EndReason, EndReason>> = { 'reset by client': 'reset by server', 'reset by server': 'reset by client' };
  return { ...result, up: result.down, down: result.up, end: swap[result.end] ?? result.end };
}

function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

/** The worker process's entry: wait for the supervisor's listen message, then serve. */
export function runWorker(): void {
  let worker: Worker | undefined;
  /** The supervisor's connection to BIRD, for withdrawing should the supervisor vanish. */
  let bird: { link: net.Socket; protocol: string } | undefined;
  const send = (message: FromWorker): void => {
    process.send?.(message);
  };
  process.on('message', (message: ToWorker, handle: unknown) => {
    switch (message.type) {
      case 'listen': {
        const log = createLogger(message.config.log.level, { port: message.port });
        process.title = workerTitle(message.port);
        worker = new Worker(message.config, message.port, log);
        try {
          const plane = worker.listen(handle as TcpHandle);
          send({ type: 'listening', ...plane });
        } catch (err) {
          const { code, message: text } = err as NodeJS.ErrnoException;
          send({ type: 'listen failed', code: code ?? 'ERROR', message: text });
        }
        break;
      }
      case 'config':
        worker?.reconfigure(message.config);
        break;
      case 'ping':
        // The heartbeat: an answer proves the event loop turns (systemd's watchdog relies on it).
        if (worker) send({ type: 'pong', seq: message.seq, stats: worker.stats() });
        break;
      case 'bird': {
        const link = handle as net.Socket;
        bird?.link.destroy();
        bird = { link, protocol: message.protocol };
        link.on('error', () => {});
        link.once('close', () => {
          if (bird?.link !== link) return;
          bird = undefined;
          send({ type: 'bird lost' });
        });
        break;
      }
      case 'drain':
        void (worker?.drain(message.deadline) ?? Promise.resolve()).then(() => {
          // The last counters go with it: nothing this process counted is lost to /metrics.
          process.send?.({ type: 'drained', stats: worker?.stats() ?? emptyStats() } satisfies FromWorker, () => process.exit(0));
        });
        break;
    }
  });
  // The supervisor going away (crash, SIGKILL) must not leave an orphan accepting forever,
  // nor the prefixes announced to a router that would send it new connections: withdraw
  // first (every worker does, BIRD takes it once), then drain.
  process.on('disconnect', () => {
    const held = bird;
    bird = undefined;
    const withdrawn =
      held === undefined
        ? Promise.resolve()
        : withdrawOverLink(held.link, held.protocol).then((reply) =>
            worker?.logger.warn({ protocol: held.protocol, bird: reply }, 'supervisor gone: withdrawn'),
          );
    void withdrawn.then(() => {
      if (worker === undefined) process.exit(0);
      void worker.drain(Date.now()).then(() => process.exit(0));
    });
  });
  // SIGTERM to this worker alone: drain and exit; the supervisor starts a fresh one.
  process.on('SIGTERM', () => {
    if (worker === undefined) process.exit(0);
    void worker.drain(Date.now() + worker.drainTimeout).then(() => process.exit(0));
  });
  // A terminal sends SIGINT and SIGHUP to the whole process group; the supervisor
  // coordinates the stop or the reload, so the workers leave those to it.
  process.on('SIGINT', () => {});
  process.on('SIGHUP', () => {});
}
