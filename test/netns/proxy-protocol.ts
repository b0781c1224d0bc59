// The client's identity for backends, with a real nginx in s4 (IPv4 only): a service with
// `proxyProtocol: v1` or `v2` sends a PROXY header that nginx's `listen … proxy_protocol` reads,
// in its http and in its stream context, naming the IPv6 client and the address it dialled; a
// service without it sends none (an http listener without proxy_protocol answers 200, which a
// header would have turned into a 400); and `source` is the address the backend sees.
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADDR, buildNetwork, translate } from '../fixtures/netns.js';
import { CLI, startDaemon } from '../fixtures/daemon.js';

if (spawnSync('nginx', ['-v']).error) throw new Error('this test needs nginx with its stream module: apt-get install nginx libnginx-mod-stream');

const SOURCE = '198.18.0.5';
const VARS = '$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_addr $proxy_protocol_server_port $remote_addr';
const HTTP_PP = 8001;
const STREAM_PP = 8002;
const HTTP_PLAIN = 8003;

const net = await buildNetwork(t);
// A second address of the translator's own on the IPv4 side: the source the backends see.
await net.run('xl', 'ip', ['addr', 'add', `${SOURCE}/24`, 'dev', 'to-s4']);

const dir = await mkdtemp(join(tmpdir(), 'faithd6-nginx-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
await writeFile(
  join(dir, 'nginx.conf'),
  `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log info;
events { worker_connections 64; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  log_format pp '${VARS}';
  server {
    listen ${ADDR.server4}:${HTTP_PP} proxy_protocol;
    access_log ${dir}/http.log pp;
    location / { return 200 "${VARS}\\n"; }
  }
  server {
    listen ${ADDR.server4}:${HTTP_PLAIN};
    access_log ${dir}/plain.log;
    location / { return 200 "plain $remote_addr\\n"; }
  }
}
stream {
  log_format pp '${VARS}';
  server {
    listen ${ADDR.server4}:${STREAM_PP} proxy_protocol;
    access_log ${dir}/stream.log pp;
    return "${VARS}\\n";
  }
}
`,
);
const nginx = net.spawn('s4', 'nginx', ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { label: 's4: nginx' });
for (let i = 0; ; i++) {
  const { stdout } = await net.run('s4', 'ss', ['-Hltn']);
  if ([HTTP_PP, STREAM_PP, HTTP_PLAIN].every((port) => stdout.includes(`${ADDR.server4}:${port} `))) break;
  if (i === 100) throw new Error(`nginx did not listen: ${await readFile(join(dir, 'error.log'), 'utf8').catch(() => '')}`);
  await new Promise((resolve) => setTimeout(resolve, 50));
}
t.teardown(() => nginx.stop(2000));

const daemon = await startDaemon(t, net, {
  source: SOURCE,
  services: [
    { port: 8101, backendPort: HTTP_PP, proxyProtocol: 'v1' },
    { port: 8102, backendPort: HTTP_PP, proxyProtocol: 'v2' },
    { port: 8201, backendPort: STREAM_PP, proxyProtocol: 'v1' },
    { port: 8202, backendPort: STREAM_PP, proxyProtocol: 'v2' },
    { port: 8301, backendPort: HTTP_PLAIN },
    { port: 8302, backendPort: HTTP_PLAIN, source: ADDR.xl4 },
  ],
});
const server6 = translate(ADDR.server4);

/** An HTTP GET from c6 through the translator; the response body. */
async function get(port: number): Promise<string> {
  const { stdout } = await net.run('c6', 'curl', ['-sS', '-g', '--fail', '--max-time', '5', `http://[${server6}]:${port}/`]);
  return stdout;
}

/** A TCP connection from c6 through the translator that sends nothing; what arrives until the server closes. */
async function read(port: number): Promise<string> {
  const script = `const s=require('net').connect({host:process.argv[1],port:+process.argv[2]});let d='';s.on('data',(c)=>d+=c);s.on('close',()=>process.stdout.write(d));s.on('error',(e)=>{console.error(e.code);process.exit(1)})`;
  const { stdout } = await net.run('c6', process.execPath, ['-e', script, server6, String(port)]);
  return stdout;
}

/** The client port faithd6 logged for the connection to port `port` that closed since `from`. */
async function loggedClientPort(port: number, from: number): Promise<number> {
  const line = await daemon.waitClosed((l) => l.port === port, 5000, from);
  return Number(/\]:(\d+)$/.exec(String(line.client))?.[1]);
}

for (const [kind, port, backend] of [
  ['http, v1', 8101, HTTP_PP],
  ['http, v2', 8102, HTTP_PP],
  ['stream, v1', 8201, STREAM_PP],
  ['stream, v2', 8202, STREAM_PP],
] as const) {
  t.test(`${kind}: nginx sees the IPv6 client and the address it dialled`, async (t) => {
    const from = daemon.proc.mark();
    const body = (backend === HTTP_PP ? await get(port) : await read(port)).trim();
    const [addr, clientPort, serverAddr, serverPort, remote] = body.split(' ');
    t.equal(addr, ADDR.client6, '$proxy_protocol_addr is the IPv6 client');
    t.equal(Number(clientPort), await loggedClientPort(port, from), "$proxy_protocol_port is the client's port, as faithd6 logged it");
    t.equal(serverAddr, server6, '$proxy_protocol_server_addr is the translated address the client dialled');
    t.equal(Number(serverPort), port, "$proxy_protocol_server_port is the port it dialled, faithd6's");
    t.equal(remote, SOURCE, '$remote_addr is the configured source');
    const log = await readFile(join(dir, backend === HTTP_PP ? 'http.log' : 'stream.log'), 'utf8');
    t.match(log.trim().split('\n').at(-1), `${ADDR.client6} ${clientPort} ${server6} ${port} ${SOURCE}`, 'and nginx logs them');
  });
}

t.test('without the option no header is sent, and a service source overrides the global one', async (t) => {
  t.equal(await get(8301), `plain ${SOURCE}\n`, 'a plain http listener answers 200: the request came without a header');
  t.equal(await get(8302), `plain ${ADDR.xl4}\n`, "the service's own source");
  t.notMatch(await readFile(join(dir, 'error.log'), 'utf8'), /broken header|PROXY/, 'nginx logged no header trouble');
});

t.test("an address that is not the host's is refused by check, with the file, line and key", async (t) => {
  const file = join(dir, 'foreign-source.yaml');
  await writeFile(file, `prefixes: [64:ff9b:1::/96]\nservices:\n  - port: 8101\n    source: 198.18.0.77\nrules: []\n`, { mode: 0o644 });
  const r = await net.run('xl', process.execPath, [CLI, 'check', '-c', file]).then(
    () => ({ code: 0, stderr: '' }),
    (err: Error) => ({ code: 78, stderr: err.message }),
  );
  t.equal(r.code, 78);
  t.match(r.stderr, `${file}:4:13: services[0].source: 198.18.0.77 is not an address of this host (its IPv4 addresses: `);
  t.match(r.stderr, SOURCE, 'the host addresses it lists are those of the namespace faithd6 runs in');
});
