import net from 'node:net';
import { AccessPolicy, hostIPv4Addresses } from './access.js';
import { formatIPv4, parseIPv6, translate, TranslationPrefix } from './address.js';
import type { Config, ServiceConfig } from './config/types.js';
import { createLogger, type Logger } from './log.js';
import { Relay, reset, type RelayResult, type RelayTimeouts } from './relay.js';

/** Messages the supervisor sends a worker. The listen message carries the bound socket. */
export type ToWorker =
  | { readonly type: 'listen'; readonly port: number; readonly config: Config }
  | { readonly type: 'config'; readonly config: Config }
  | { readonly type: 'ping'; readonly seq: number }
  | { readonly type: 'drain'; readonly deadline: number };

/** Messages a worker sends the supervisor. */
export type FromWorker =
  | { readonly type: 'listening' }
  | { readonly type: 'listen failed'; readonly code: string; readonly message: string }
  | { readonly type: 'pong'; readonly seq: number; readonly stats: WorkerStats }
  | { readonly type: 'drained' };

/** One worker's counters since it started; bytes include the connections still open. */
export interface WorkerStats {
  /** Relayed connections open now. */
  active: number;
  /** Connections relayed (accepted, permitted, backend dialled) since the worker started. */
  relayed: number;
  /** Refused by the access rules. */
  denied: number;
  /** Dialled an address outside every prefix. */
  notTranslated: number;
  /** Reset because the worker held its maximum of connections, or was draining. */
  limited: number;
  /** Relayed connections whose backend refused, was unreachable or timed out. */
  connectFailed: number;
  /** Bytes from clients to backends. */
  up: number;
  /** Bytes from backends to clients. */
  down: number;
}

const CONNECT_FAILURES: ReadonlySet<string> = new Set(['refused', 'unreachable', 'connect timeout', 'connect failed']);

/** What one worker holds: compiled from the config on start and on every reload. */
interface Compiled {
  readonly service: ServiceConfig;
  readonly prefixes: readonly TranslationPrefix[];
  readonly policy: AccessPolicy;
  readonly timeouts: RelayTimeouts;
  readonly drainTimeout: number;
  readonly maxConnections: number;
}

function compile(config: Config, port: number): Compiled {
  const service = config.services.find((s) => s.port === port);
  if (!service) throw new Error(`port ${port} is not in ${config.file}`);
  const prefixes = config.prefixes.map((p) => TranslationPrefix.parse(p));
  return {
    service,
    prefixes,
    policy: new AccessPolicy(config.rules, prefixes, hostIPv4Addresses()),
    timeouts: config.timeouts,
    drainTimeout: config.timeouts.drain,
    maxConnections: config.limits.connectionsPerWorker,
  };
}

function bracket(address: string | undefined, port: number | undefined): string {
  return `[${address ?? '?'}]:${port ?? '?'}`;
}

/**
 * One service port: accepts on the listening socket the supervisor bound, translates the
 * dialled address, checks the rules and relays. Runs in its own process so that a crash
 * here never touches another port.
 */
export class Worker {
  private compiled: Compiled;
  private readonly log: Logger;
  private readonly server: net.Server;
  private readonly relays = new Set<Relay>();
  private draining = false;
  /** Counters; bytes here are those of closed connections (stats() adds the open ones). */
  private readonly counts: WorkerStats = {
    active: 0,
    relayed: 0,
    denied: 0,
    notTranslated: 0,
    limited: 0,
    connectFailed: 0,
    up: 0,
    down: 0,
  };

  constructor(config: Config, port: number, log: Logger) {
    this.compiled = compile(config, port);
    this.log = log;
    this.server = net.createServer(
      { allowHalfOpen: true, pauseOnConnect: true, noDelay: true },
      this.onConnection,
    );
    // An accept error (EMFILE, ENFILE, ENOBUFS) must not kill the worker: libuv keeps
    // the listener and tries again on the next readiness.
    this.server.on('error', (err) => this.log.error({ err }, 'accept failed'));
  }

  /** Starts accepting on a listening socket handle received from the supervisor. */
  listen(handle: object): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(handle, () => {
        this.server.off('error', onError);
        const bound = (this.server.address() as net.AddressInfo | null)?.port;
        if (bound === this.compiled.service.port) resolve();
        else reject(Object.assign(new Error(`listening on port ${bound}, not ${this.compiled.service.port}`), { code: 'EADDRINUSE' }));
      });
    });
  }

  /** Applies a reloaded config to new connections; established ones keep their settings. */
  reconfigure(config: Config): void {
    this.compiled = compile(config, this.compiled.service.port);
    this.log.level = config.log.level;
  }

  /** Milliseconds open connections may take to finish when the worker stops. */
  get drainTimeout(): number {
    return this.compiled.drainTimeout;
  }

  /** Connections currently held. */
  get connections(): number {
    return this.relays.size;
  }

  /** The counters as of now, open connections' bytes included. */
  stats(): WorkerStats {
    let up = this.counts.up;
    let down = this.counts.down;
    for (const relay of this.relays) {
      up += relay.client.bytesRead;
      down += relay.backend.bytesRead;
    }
    return { ...this.counts, active: this.relays.size, up, down };
  }

  /**
   * Stops accepting, waits for open connections to finish, and at the deadline resets what
   * is left. Resolves once no connection remains.
   */
  drain(deadline: number): Promise<void> {
    this.draining = true;
    this.server.close();
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.relays.size > 0) return;
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        for (const relay of this.relays) relay.stop();
        check();
      }, Math.max(0, deadline - Date.now()));
      this.afterClose = check;
      check();
    });
  }

  private afterClose: (() => void) | undefined;

  private readonly onConnection = (socket: net.Socket): void => {
    const { compiled } = this;
    const dialled = socket.localAddress;
    const local = dialled === undefined ? undefined : parseIPv6(dialled);
    const translation = local === undefined ? undefined : translate(compiled.prefixes, local);
    if (translation === undefined) {
      // The listener is on [::]:port, so it also gets connections to this host's ordinary
      // addresses; those are not translations.
      this.refuse(socket, 'not translated', { dst: dialled });
      return;
    }
    const backendHost = formatIPv4(translation.ipv4);
    const backendPort = compiled.service.backendPort;
    const source = parseIPv6(socket.remoteAddress ?? '');
    const verdict =
      source === undefined
        ? undefined
        : compiled.policy.check(source, translation.ipv4, compiled.service.port);
    if (verdict === undefined || !verdict.permit) {
      this.refuse(socket, 'denied', {
        dst: dialled,
        backend: `${backendHost}:${backendPort}`,
        reason: verdict?.reason ?? 'unparsable source address',
        rule: verdict?.rule,
      });
      return;
    }
    if (this.draining || this.relays.size >= compiled.maxConnections) {
      this.refuse(socket, 'limit', { dst: dialled, backend: `${backendHost}:${backendPort}` });
      return;
    }
    const peers = {
      client: bracket(socket.remoteAddress, socket.remotePort),
      dst: dialled as string,
      backend: `${backendHost}:${backendPort}`,
    };
    const relay = new Relay(socket, backendHost, backendPort, peers, compiled.timeouts, this.onRelayClose);
    this.relays.add(relay);
    this.counts.relayed += 1;
  };

  private readonly onRelayClose = (relay: Relay, result: RelayResult): void => {
    this.relays.delete(relay);
    this.counts.up += result.up;
    this.counts.down += result.down;
    if (CONNECT_FAILURES.has(result.end)) this.counts.connectFailed += 1;
    this.log.info(
      {
        ...relay.peers,
        up: result.up,
        down: result.down,
        ms: result.ms,
        end: result.end,
        error: result.error,
      },
      'relay closed',
    );
    this.afterClose?.();
  };

  private refuse(socket: net.Socket, end: 'not translated' | 'denied' | 'limit', fields: object): void {
    if (end === 'denied') this.counts.denied += 1;
    else if (end === 'limit') this.counts.limited += 1;
    else this.counts.notTranslated += 1;
    const client = bracket(socket.remoteAddress, socket.remotePort);
    reset(socket);
    // TODO(issue 4): rate-limit these lines.
    this.log.info({ client, ...fields, up: 0, down: 0, ms: 0, end }, 'relay closed');
  }
}

/** The worker process's entry: wait for the supervisor's listen message, then serve. */
export function runWorker(): void {
  let worker: Worker | undefined;
  const send = (message: FromWorker): void => {
    process.send?.(message);
  };
  process.on('message', (message: ToWorker, handle: unknown) => {
    switch (message.type) {
      case 'listen': {
        const log = createLogger(message.config.log.level, { port: message.port });
        process.title = `faithd6: worker port ${message.port}`;
        worker = new Worker(message.config, message.port, log);
        worker.listen(handle as object).then(
          () => send({ type: 'listening' }),
          (err: NodeJS.ErrnoException) =>
            send({ type: 'listen failed', code: err.code ?? 'ERROR', message: err.message }),
        );
        break;
      }
      case 'config':
        worker?.reconfigure(message.config);
        break;
      case 'ping':
        // The heartbeat: an answer proves the event loop turns (systemd's watchdog relies on it).
        if (worker) send({ type: 'pong', seq: message.seq, stats: worker.stats() });
        break;
      case 'drain':
        void (worker?.drain(message.deadline) ?? Promise.resolve()).then(() => {
          process.send?.({ type: 'drained' } satisfies FromWorker, () => process.exit(0));
        });
        break;
    }
  });
  // The supervisor going away (crash, SIGKILL) must not leave an orphan accepting forever.
  process.on('disconnect', () => {
    if (worker === undefined) process.exit(0);
    void worker.drain(Date.now()).then(() => process.exit(0));
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
