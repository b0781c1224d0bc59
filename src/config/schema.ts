/**
 * The configuration's one definition. Everything else about a key is derived from here:
 *
 * - the TypeScript types (`Config` and friends, in types.ts);
 * - the defaults, ranges and messages `check` reports (walk.ts reads this schema);
 * - the JSON Schema editors use (`faithd6 schema`, shipped as etc/faithd6.schema.json);
 * - which keys a reload can change, and the reload's list of changes (diff.ts);
 * - the settings `check` prints (describe.ts).
 *
 * A new key is one property here (plus a check in semantic.ts if no schema can express it, and
 * its line in etc/faithd6.yaml and the README), then `npm run schema`. TypeBox builds plain
 * JSON Schema objects, so the same object is what the walker interprets and what editors read.
 * The program does not load TypeBox (a quarter to half a second of CPU at every start of the
 * CLI and the daemon): `npm run schema` writes the object this builds into schema-data.ts,
 * which everything else imports, and etc/faithd6.schema.json (generate-schema.ts);
 * test/config/schema.ts fails while either is out of date.
 *
 * Besides standard keywords, nodes carry annotations whose names start with `x-` (stripped
 * from the JSON Schema editors get):
 * - `x-format`: a value parsed by a named reader in walk.ts (durations become milliseconds,
 *   networks their canonical text);
 * - `x-list: one-or-many`: a single value stands for a list of one;
 * - `x-expected`: what an error says was expected, where the walker's own phrase would not do;
 * - `x-reload: restart`: a reload keeps the running value (and says so);
 * - `x-key`: the property that names an item of a list, for the reload's list of changes;
 * - `x-explain`: words `check` prints after particular values;
 * - `x-positive`, `x-max`: a duration's bounds, written as durations.
 */
import Type, { type TSchema } from 'typebox';
import { MAX_DURATION } from './duration.js';

/** What a duration looks like to an editor: numbers with units, largest first, or a bare 0. */
const DURATION_PATTERN = '^\\s*(0+(\\.0+)?|((\\d+(\\.\\d+)?|\\.\\d+)(ms|d|h|m|s))+)\\s*$';

interface DurationOptions {
  readonly description: string;
  readonly default: string;
  /** Whether 0 is refused. */
  readonly positive: boolean;
  readonly max?: string;
}

/** A duration: written `500ms`, `10s`, `2h4m` (or `0`), validated to whole milliseconds. */
function Duration(options: DurationOptions) {
  const max = options.max ?? MAX_DURATION;
  return Type.Unsafe<number>({
    anyOf: [{ type: 'string', pattern: DURATION_PATTERN }, { const: 0 }],
    description: `${options.description} (a duration such as 10s, 5m or 1h30m; ${options.positive ? 'more than 0' : 'may be 0'}, at most ${max})`,
    default: options.default,
    'x-format': 'duration',
    'x-positive': options.positive,
    'x-max': max,
  });
}

/** An integer within bounds, with a default. */
function Int(minimum: number, maximum: number, description: string, extra: Record<string, unknown> = {}) {
  return Type.Integer({ minimum, maximum, description, ...extra });
}

/** One of a few words. */
function OneOf<const T extends readonly string[]>(choices: T, options: Record<string, unknown>) {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...choices], ...options });
}

/** A string read by one of walk.ts's formats. */
function Formatted<T = string>(format: string, options: Record<string, unknown>) {
  return Type.Unsafe<T>({ type: 'string', 'x-format': format, ...options });
}

/** A list of `item`s, or one of them standing for a list of one; validated to a list. */
function OneOrMany<T extends TSchema>(item: T, options: Record<string, unknown>) {
  return Type.Unsafe<Type.Static<T>[]>({
    anyOf: [item, { type: 'array', items: item, minItems: 1 }],
    'x-list': 'one-or-many',
    ...options,
  });
}

const PORT = Int(1, 65535, 'the port clients connect to');

/** The IPv4 address connections to backends come from. */
function Source(description: string) {
  return Formatted<string | null>('ipv4-address', {
    pattern: '^[0-9]{1,3}(\\.[0-9]{1,3}){3}$',
    description,
    'x-expected': 'an IPv4 address of this host such as 198.18.0.5',
    'x-explain': { null: 'the kernel picks it by the route to each backend' },
    default: null,
  });
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const Service = Type.Object(
  {
    port: PORT,
    backendPort: Type.Optional(Int(1, 65535, "the IPv4 server's port (default: the same as port)")),
    workers: Type.Optional(Int(1, 64, "processes sharing this port's connections; one stream is always relayed by one worker", { default: 1 })),
    proxyProtocol: Type.Optional(
      OneOf(['none', 'v1', 'v2'], {
        description:
          "a PROXY protocol header (haproxy's, version 1 text or 2 binary) sent to the backend before any client byte, naming the IPv6 client and the address it dialled; only for backends configured to expect it",
        default: 'none',
      }),
    ),
    source: Type.Optional(Source("the IPv4 address this port's connections to the backend come from (default: the top-level source)")),
    protocol: Type.Optional(
      OneOf(['tcp', 'ftp'], {
        description:
          'tcp: every byte is relayed as it is; ftp: the FTP gateway (RFC 6384) reads the control connection, so that passive (EPSV) and active (EPRT) data connections work through the translator',
        default: 'tcp',
        'x-explain': { tcp: 'a plain relay', ftp: 'the FTP gateway: EPSV, EPRT and their data connections are translated' },
      }),
    ),
  },
  { additionalProperties: false, description: 'a service', 'x-key': 'port', 'x-removed': 'its connections drain' },
);

const IPV6_NETWORK = Formatted('network6', { 'x-expected': 'an IPv6 network such as 2001:db8::/32' });
const IPV4_NETWORK = Formatted('network4', { 'x-expected': 'an IPv4 network such as 192.0.2.0/24' });

const Rule = Type.Object(
  {
    action: OneOf(['permit', 'deny'], { description: 'what the rule does to a connection it matches' }),
    from: Type.Optional(
      OneOrMany(IPV6_NETWORK, {
        description: 'the IPv6 clients the rule applies to (a bare address means /128; default ::/0, every client)',
        default: ['::/0'],
      }),
    ),
    to: OneOrMany(IPV4_NETWORK, { description: 'the IPv4 destinations the rule applies to, such as 192.0.2.10/32' }),
    ports: Type.Optional(
      OneOrMany(Type.Integer({ minimum: 1, maximum: 65535 }), {
        description: 'the service ports the rule applies to (default: every service port)',
        'x-expected': 'a service port or a list of them (an integer from 1 to 65535)',
        default: [],
      }),
    ),
  },
  { additionalProperties: false, description: 'a rule' },
);

export const ConfigSchema = Type.Object(
  {
    prefixes: OneOrMany(Formatted('translation-prefix', { 'x-expected': 'a translation prefix such as 2001:db8:5999::/96' }), {
      description: 'a list of translation prefixes such as 2001:db8:5999::/96',
      'x-expected': 'a list of translation prefixes such as 2001:db8:5999::/96',
      'x-reload': 'restart',
    }),
    route: Type.Optional(
      OneOf(['manage', 'external'], {
        description: 'manage: faithd6 adds and removes "local PREFIX dev lo"; external: the operator does',
        default: 'manage',
        'x-reload': 'restart',
        'x-explain': {
          manage: 'faithd6 adds and removes "local PREFIX dev lo" itself',
          external: 'the local routes for the prefixes are set up outside faithd6',
        },
      }),
    ),
    services: Type.Array(Service, {
      minItems: 1,
      description: 'a list of services, each with a port',
      'x-expected': 'a list of services, each with a port',
    }),
    rules: Type.Array(Rule, {
      description: 'a list of access rules; an empty list denies everything',
      'x-expected': 'a list of access rules (an empty list denies everything)',
    }),
    timeouts: Type.Optional(
      Type.Object(
        {
          connect: Type.Optional(Duration({ description: 'to reach the IPv4 server', default: '5s', positive: true, max: '10m' })),
          // RFC 5382 REQ-5: at least 2 h 4 min for established TCP.
          idle: Type.Optional(Duration({ description: 'no byte either way', default: '2h4m', positive: true })),
          halfClosed: Type.Optional(
            Duration({ description: 'one side has finished sending and the other has sent nothing since', default: '4m', positive: true }),
          ),
          drain: Type.Optional(
            Duration({ description: 'on stop, how long open connections may finish; 0 closes them at once', default: '30s', positive: false }),
          ),
        },
        { additionalProperties: false, description: 'timeouts', default: {} },
      ),
    ),
    limits: Type.Optional(
      Type.Object(
        {
          connectionsPerWorker: Type.Optional(Int(1, 1_000_000, 'concurrent relayed connections one worker holds', { default: 4096 })),
          connectionsPerSource: Type.Optional(Int(1, 1_000_000, 'concurrent connections from one client source (its /sourcePrefixLength)', { default: 512 })),
          sourcePrefixLength: Type.Optional(Int(16, 128, 'how client addresses are grouped into sources: an IPv6 host owns a whole /64', { default: 64 })),
          pendingConnects: Type.Optional(Int(1, 1_000_000, "connections still waiting for their backend's SYN-ACK", { default: 1024 })),
          pendingConnectsPerSource: Type.Optional(Int(1, 1_000_000, 'of those, from one source', { default: 64 })),
          connectionsPerBackend: Type.Optional(Int(1, 1_000_000, 'concurrent connections to one IPv4 backend address, from all sources', { default: 2048 })),
          newConnectionsPerSecond: Type.Optional(
            Int(0, 1_000_000, "new connections per second from one source (bursts of two seconds' worth pass); 0: no limit", {
              default: 100,
              'x-explain': { 0: 'no limit' },
            }),
          ),
        },
        { additionalProperties: false, description: 'limits, each enforced by every worker on its own connections', default: {} },
      ),
    ),
    log: Type.Optional(
      Type.Object(
        { level: Type.Optional(OneOf(LOG_LEVELS, { description: 'the lowest level logged', default: 'info' })) },
        { additionalProperties: false, description: 'log settings', default: {} },
      ),
    ),
    source: Type.Optional(Source('the IPv4 address connections to backends come from, unless a service says otherwise; an address of this host')),
    metrics: Type.Optional(
      Type.Object(
        {
          listen: Type.Optional(
            Formatted<string | null>('listen-address', {
              pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[0-9.]+):[0-9]{1,5}$',
              description: 'where Prometheus metrics are served (GET /metrics), such as [::1]:9464; not set: no metrics',
              'x-expected': 'an address and port such as [::1]:9464 or 127.0.0.1:9464',
              'x-explain': { null: 'no metrics are served' },
              default: null,
            }),
          ),
        },
        { additionalProperties: false, description: 'Prometheus metrics', default: {}, 'x-reload': 'restart' },
      ),
    ),
    announce: Type.Optional(
      Type.Object(
        {
          birdSocket: Type.Optional(
            Formatted<string | null>('absolute-path', {
              pattern: '^/',
              description: "BIRD's control socket, such as /run/bird/bird.ctl; not set: faithd6 announces nothing",
              'x-expected': 'an absolute path such as /run/bird/bird.ctl',
              'x-explain': { null: 'no announcement: the prefixes are routed to this host by other means' },
              default: null,
            }),
          ),
          protocol: Type.Optional(
            Formatted('bird-symbol', {
              pattern: '^[A-Za-z_][A-Za-z0-9_]{0,63}$',
              description: 'the BIRD protocol faithd6 enables and disables: a static protocol holding the prefixes, exported to BGP',
              'x-expected': 'a BIRD protocol name such as faithd6',
              default: 'faithd6',
            }),
          ),
          withdrawGrace: Type.Optional(
            Duration({
              description: 'on stop, how long faithd6 goes on accepting after withdrawing, so that the router has moved new flows away first',
              default: '2s',
              positive: false,
              max: '10m',
            }),
          ),
        },
        { additionalProperties: false, description: 'announcing the prefixes over BGP through BIRD', default: {}, 'x-reload': 'restart' },
      ),
    ),
    dataPlane: Type.Optional(
      OneOf(['native', 'js'], {
        description:
          'native: the relay mechanics (accept, connect, moving bytes, half-close, resets, timers) run in C (the addon in native/), the decisions in TypeScript; js: all of it in JavaScript. Where the addon cannot load, faithd6 says so and uses js',
        default: 'native',
        'x-reload': 'restart',
        'x-explain': {
          native: 'the native data plane, or js where its addon cannot load',
          js: 'the JavaScript data plane',
        },
      }),
    ),
    listenBacklog: Type.Optional(
      Int(
        0,
        1_000_000,
        "connections the kernel completes and queues for the workers of a port before they accept them (listen(2)'s backlog), capped by the kernel at net.core.somaxconn; 0: that value",
        { default: 0, 'x-reload': 'restart', 'x-explain': { 0: 'net.core.somaxconn, the most the kernel allows' } },
      ),
    ),
    user: Type.Optional(
      Formatted<string | null>('user-name', {
        pattern: '^[A-Za-z_][A-Za-z0-9_-]{0,31}$',
        description: 'the user workers run as when faithd6 starts as root (default: faithd6 if that user exists, else nobody)',
        'x-expected': 'a user name such as faithd6',
        'x-reload': 'restart',
        'x-explain': { null: 'faithd6 if that user exists, else nobody' },
        default: null,
      }),
    ),
    runtimeDirectory: Type.Optional(
      Formatted('absolute-path', {
        pattern: '^/',
        description: 'where the pidfile and the control socket live',
        'x-expected': 'an absolute directory path such as /run/faithd6',
        'x-reload': 'restart',
        default: '/run/faithd6',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'the faithd6 configuration',
    'x-expected': 'a mapping of settings (prefixes, services, rules, ...) at the top level',
  },
);

/** The configuration as the file may write it, before defaults and normalisation. */
export type ConfigInput = Type.Static<typeof ConfigSchema>;
