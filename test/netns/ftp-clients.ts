// The FTP gateway with real clients and a real IPv4-only server: curl, lftp and wget in c6
// (IPv6 only) list, download and upload 64 MiB through faithd6 to vsftpd in s4 (listen_ipv6=NO),
// in passive and in active mode, each file checked by its sha256 at both ends. The clients send
// what they send over IPv6 (EPSV, EPRT |2|…|); vsftpd only ever sees PASV and PORT, from the
// translator's IPv4 address. Also: a resumed download (REST), 50 files in one session with
// every data listener gone afterwards, a server that refuses EPSV and EPRT as an old one would
// (which the gateway never sends it), one that refuses passive mode (its refusal reaches the
// client), where active-mode data connections come from, AUTH TLS, and the time of a 64 MiB
// transfer through the gateway beside a plain relay and a direct IPv4 download in the same run.
import { spawnSync } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test as Tap } from 'tap';
import { ADDR, buildNetwork, translate } from '../fixtures/netns.js';
import { runCli, startDaemon } from '../fixtures/daemon.js';
import {
  clientCommands,
  dataVerbs,
  requireFtpTools,
  serverSince,
  curlFtp,
  ftpUrl,
  lftp,
  makeFile,
  sha256File,
  startVsftpd,
  wget,
  writeHead,
  type ClientResult,
  type Vsftpd,
} from '../fixtures/ftp.js';

requireFtpTools([['openssl', 'version']]);

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const BIG = 'big.bin';

const net = await buildNetwork(t);
// Active-mode data connections come from the translated address only where the host lets a
// socket bind it (doctor says so); the last test turns it off again.
await net.run('xl', 'sysctl', ['-qw', 'net.ipv6.ip_nonlocal_bind=1']);

const work = await mkdtemp(join(tmpdir(), 'faithd6-ftp-alg-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
// A self-signed certificate for the AUTH TLS case.
const cert = join(work, 'vsftpd.pem');
spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=s4', '-keyout', cert, '-out', cert], { stdio: 'ignore' });

const ftp = await startVsftpd(t, net, {
  port: 21,
  extra: [
    'ssl_enable=YES',
    `rsa_cert_file=${cert}`,
    'allow_anon_ssl=YES',
    'force_local_logins_ssl=NO',
    'force_anon_logins_ssl=NO',
    'force_anon_data_ssl=NO',
    'ssl_request_cert=NO',
  ],
});
// An old server: it knows neither EPSV nor EPRT (vsftpd answers them 550 here).
const old = await startVsftpd(t, net, { port: 2121, extra: ['cmds_denied=EPSV,EPRT'] });
// One that does no passive mode at all.
await startVsftpd(t, net, { port: 2122, pasvEnable: false });
// One whose passive data port is always 30000, so that a plain relay of that port too carries
// FTP without the gateway: the baseline of the gateway's cost.
const fixedPort = await startVsftpd(t, net, { port: 2123, pasvMinPort: 30000, pasvMaxPort: 30000 });

const daemon = await startDaemon(t, net, {
  services: [
    { port: 21, protocol: 'ftp' },
    { port: 2121, protocol: 'ftp' },
    { port: 2122, protocol: 'ftp' },
    // The same server through a plain relay: the control connection works, data connections cannot.
    { port: 2100, backendPort: 21 },
    // The fixed-port server, through the gateway and through plain relays of its two ports.
    { port: 2123, protocol: 'ftp' },
    { port: 2124, backendPort: 2123 },
    { port: 30000 },
  ],
});
const dst = translate(ADDR.server4);
const url = (port: number, path = '') => ftpUrl(dst, port, path);

const bigHash = await makeFile(join(ftp.root, 'pub', BIG), SIZE);
await link(join(ftp.root, 'pub', BIG), join(fixedPort.root, 'pub', BIG));
const upload = join(work, 'upload.bin');
const uploadHash = await makeFile(upload, SIZE);

/**
 * The client succeeded with `sent` as its data-connection commands (over IPv6), while vsftpd
 * saw only `seen` (the gateway's translation), from the translator's IPv4 address.
 */
async function translated(t: Tap, r: ClientResult, server: Vsftpd, from: number, sent: string, seen: string, what: string): Promise<void> {
  t.equal(r.code, 0, `${what}: exit 0`, { stderr: r.stderr.slice(-3000) });
  const client = dataVerbs(clientCommands(r.stderr));
  t.ok(client.length > 0 && client.every((v) => v === sent), `${what}: the client sent ${sent}`, { client });
  const server4 = await serverSince(server, from);
  t.strictSame(server4.clients, [ADDR.xl4], `${what}: vsftpd saw the translator's ${ADDR.xl4}`);
  t.ok(server4.data.length === client.length && server4.data.every((v) => v === seen), `${what}: and got ${seen} for each`, { server: server4.data });
}

interface Client {
  name: string;
  list(active: boolean): Promise<ClientResult>;
  download(active: boolean, dest: string): Promise<ClientResult>;
  upload?(active: boolean, src: string, name: string): Promise<ClientResult>;
}

const clients: Client[] = [
  {
    name: 'curl',
    list: (active) => curlFtp(net, 'c6', url(21, 'pub/'), { active, verbose: true }),
    download: (active, dest) => curlFtp(net, 'c6', url(21, `pub/${BIG}`), { active, verbose: true, output: dest }),
    upload: (active, src, name) => curlFtp(net, 'c6', url(21, `incoming/${name}`), { active, verbose: true, upload: src }),
  },
  {
    name: 'lftp',
    list: (active) => lftp(net, 'c6', [`open ${url(21)}`, 'cls -l pub/'], { passive: !active }),
    download: (active, dest) => lftp(net, 'c6', [`open ${url(21)}`, `get pub/${BIG} -o ${dest}`], { passive: !active }),
    upload: (active, src, name) => lftp(net, 'c6', [`open ${url(21)}`, `put ${src} -o incoming/${name}`], { passive: !active }),
  },
  {
    // wget cannot upload over FTP.
    name: 'wget',
    list: (active) => wget(net, 'c6', url(21, 'pub/'), { output: join(work, `wget-list-${String(active)}.html`), active }),
    download: (active, dest) => wget(net, 'c6', url(21, `pub/${BIG}`), { output: dest, active }),
  },
];

/** Figures for the note: how long each 64 MiB download took. */
const timings: string[] = [];

for (const client of clients) {
  for (const mode of ['passive', 'active'] as const) {
    const active = mode === 'active';
    const [sent, seen] = active ? ['EPRT', 'PORT'] : ['EPSV', 'PASV'];
    t.test(`${client.name}, ${mode}: list, 64 MiB down${client.upload ? ' and up' : ''}, through the gateway`, async (t) => {
      let from = (await ftp.commands()).length;
      const before = daemon.proc.mark();
      const list = await client.list(active);
      await translated(t, list, ftp, from, sent, seen, 'list');
      // The listing's control connection logs once its data connection has closed too: that
      // line is in before the download's is looked for.
      await daemon.waitClosed((l) => l.port === 21 && typeof l.data === 'object', 10_000, before);

      from = (await ftp.commands()).length;
      const dest = join(work, `${client.name}-${mode}.bin`);
      const mark = daemon.proc.mark();
      const down = await client.download(active, dest);
      await translated(t, down, ftp, from, sent, seen, 'download');
      t.equal(await sha256File(dest), bigHash, 'the download has the sha256 of the file in pub/');
      timings.push(`${client.name} ${mode}: ${down.ms} ms`);
      await rm(dest);
      const line = await daemon.waitClosed((l) => l.port === 21 && typeof l.data === 'object', 10_000, mark);
      const data = line.data as { connections: number; up: number; down: number };
      t.ok(data.connections >= 1, "the control connection's log line counts its data connections", { data });
      t.ok(data.down >= SIZE, 'and their bytes: the 64 MiB came down', { data });

      if (client.upload) {
        from = (await ftp.commands()).length;
        const name = `${client.name}-${mode}.bin`;
        const up = await client.upload(active, upload, name);
        await translated(t, up, ftp, from, sent, seen, 'upload');
        const landed = join(ftp.root, 'incoming', name);
        t.equal(await sha256File(landed), uploadHash, 'what landed in incoming/ has the sha256 of the upload');
        await rm(landed);
      }
    });
  }
}

t.test('a resumed download: REST passes through, the file is whole', async (t) => {
  const offset = 20 * MiB + 12345;
  const partial = join(work, 'partial.bin');
  await writeHead(join(ftp.root, 'pub', BIG), partial, offset);
  const from = (await ftp.commands()).length;
  const r = await curlFtp(net, 'c6', url(21, `pub/${BIG}`), { output: partial, resumeFrom: offset, verbose: true });
  t.equal(r.code, 0, 'exit 0', { stderr: r.stderr.slice(-3000) });
  t.ok(
    (await ftp.commands()).slice(from).some((c) => c.line === `REST ${offset}`),
    `vsftpd got REST ${offset}`,
  );
  t.equal(await sha256File(partial), bigHash, 'the resumed file has the right sha256');
  await rm(partial);
});

/** The worker's open descriptors and the translator's listening sockets besides the service ports. */
async function footprint(): Promise<{ fds: number; listening: number }> {
  const pid = daemon.workerPid(21);
  if (pid === undefined) throw new Error('no worker for port 21');
  const { stdout } = await net.run('xl', 'ss', ['-Hltn']);
  const listening = stdout.split('\n').filter((l) => l.trim() !== '' && !/:(21|2100|2121|2122|2123|2124|30000)\s/.test(l)).length;
  return { fds: (await readdir(`/proc/${pid}/fd`)).length, listening };
}

t.test('50 files in one control session; afterwards every data listener is gone', async (t) => {
  await mkdir(join(ftp.root, 'pub', 'many'));
  const sums = new Map<string, string>();
  for (let i = 0; i < 50; i++) sums.set(`f${i}.bin`, await makeFile(join(ftp.root, 'pub', 'many', `f${i}.bin`), 10_000 + i));
  const before = await footprint();
  const out = join(work, 'many');
  await mkdir(out);
  const mark = daemon.proc.mark();
  const r = await lftp(net, 'c6', [`open ${url(21)}`, `mget -O ${out} pub/many/*`], { debug: true });
  t.equal(r.code, 0, 'lftp mget: exit 0', { stderr: r.stderr.slice(-3000) });
  for (const [name, sum] of sums) if ((await sha256File(join(out, name))) !== sum) t.fail(`${name} differs`);
  t.equal((await readdir(out)).length, 50, 'all 50 arrived, each with its sha256');
  const line = await daemon.waitClosed((l) => l.port === 21 && typeof l.data === 'object', 10_000, mark);
  t.ok((line.data as { connections: number }).connections >= 50, 'one control connection carried them all', { data: line.data });
  const after = await footprint();
  t.strictSame(after, before, "the worker's descriptors and the listening sockets are back where they were");
});

t.test('an old server that knows neither EPSV nor EPRT works all the same: it only ever gets PASV and PORT', async (t) => {
  for (const active of [false, true]) {
    const dest = join(work, `old-${String(active)}.bin`);
    const from = (await old.commands()).length;
    await makeFile(join(old.root, 'pub', 'small.bin'), 1 * MiB);
    const r = await curlFtp(net, 'c6', url(2121, 'pub/small.bin'), { active, verbose: true, output: dest });
    await translated(t, r, old, from, active ? 'EPRT' : 'EPSV', active ? 'PORT' : 'PASV', active ? 'active' : 'passive');
    t.equal(await sha256File(dest), await sha256File(join(old.root, 'pub', 'small.bin')));
  }
});

t.test('a server that refuses passive mode: its refusal reaches the client', async (t) => {
  const r = await curlFtp(net, 'c6', url(2122, 'pub/'), { verbose: true });
  // Over IPv6 curl does not fall back to PASV: exit 8, "Failed EPSV attempt".
  t.equal(r.code, 8, 'curl gives up on passive mode', { stderr: r.stderr.slice(-2000) });
  t.match(r.stderr, /< 550 Permission denied\./, "the client got vsftpd's 550 as vsftpd wrote it");
  const active = await curlFtp(net, 'c6', url(2122, 'pub/'), { verbose: true, active: true });
  t.equal(active.code, 0, 'active mode still works there', { stderr: active.stderr.slice(-2000) });
});

t.test('without the gateway (a plain relay of the same server) the control connection works and no data connection can', async (t) => {
  const r = await curlFtp(net, 'c6', url(2100, 'pub/'), { verbose: true, timeout: 20_000 });
  t.match(r.stderr, /< 229 Entering Extended Passive Mode \(\|\|\|\d+\|\)/, "vsftpd's own 229 reaches the client");
  t.not(r.code, 0, 'and the data connection to its port fails', { code: r.code });
});

t.test('AUTH TLS: the encrypted session passes untouched, and the gateway says so once', async (t) => {
  const mark = daemon.proc.mark();
  // -I needs no data connection (SIZE and MDTM): the whole session is on the encrypted control connection.
  const r = await curlFtp(net, 'c6', url(21, `pub/${BIG}`), { verbose: true, args: ['--ssl-reqd', '-k', '-I'] });
  t.equal(r.code, 0, 'curl: exit 0', { stderr: r.stderr.slice(-3000) });
  t.match(r.stderr, /SSL connection using TLS/, 'the TLS handshake went through the gateway');
  t.match(r.stdout, `Content-Length: ${SIZE}`, 'and the encrypted SIZE was answered');
  await daemon.proc.waitFor((l) => String(l.msg).startsWith('ftp control connection encrypted'), { timeout: 5000, from: mark });
  t.equal(daemon.proc.filter((l) => String(l.msg).startsWith('ftp control connection encrypted'), mark).length, 1, 'logged once');
});

t.test('where active-mode data connections come from', async (t) => {
  // lftp's ftp:verify-address refuses a data connection from anywhere but the control connection's peer.
  const strict = () =>
    lftp(net, 'c6', [`open ${url(21)}`, 'cls pub/'], { passive: false, settings: { 'ftp:verify-address': 'yes', 'net:max-retries': 1 }, timeout: 30_000 });
  const doctor = async () => (await runCli(net, ['doctor', '-c', daemon.configFile], 30_000, false)).stdout;
  t.match(
    await doctor(),
    /FTP gateway \(4 ports: 21, 2121, 2122, 2123\): net\.ipv6\.ip_nonlocal_bind is 1: active-mode data connections come from the translated address/,
    'doctor says so',
  );
  const fromTranslated = await strict();
  t.equal(fromTranslated.code, 0, 'with ip_nonlocal_bind=1: from the translated address, which lftp accepts', { stderr: fromTranslated.stderr.slice(-2000) });
  await net.run('xl', 'sysctl', ['-qw', 'net.ipv6.ip_nonlocal_bind=0']);
  const fromOwn = await strict();
  t.not(fromOwn.code, 0, "without it: from the translator's own address, which lftp refuses");
  t.match(
    await doctor(),
    /note: net\.ipv6\.ip_nonlocal_bind is 0: active-mode \(EPRT\) data connections come from this host's own IPv6 address/,
    'doctor says that too',
  );
  const curl = await curlFtp(net, 'c6', url(21, 'pub/'), { verbose: true, active: true });
  t.equal(curl.code, 0, 'while clients that do not check (curl) still work', { stderr: curl.stderr.slice(-2000) });
});

t.test('64 MiB through the gateway, through plain relays of the control and data ports, and direct (figures for the note)', async (t) => {
  const ms: Record<'gateway' | 'plain' | 'direct', number[]> = { gateway: [], plain: [], direct: [] };
  for (let round = 0; round < 5; round++) {
    for (const [kind, host, address, port] of [
      ['gateway', 'c6', dst, 2123],
      ['plain', 'c6', dst, 2124],
      ['direct', 'xl', ADDR.server4, 2123],
    ] as const) {
      const dest = join(work, `${kind}.bin`);
      const r = await curlFtp(net, host, ftpUrl(address, port, `pub/${BIG}`), { output: dest, verbose: true });
      t.equal(r.code, 0, `${kind}: exit 0`, { stderr: r.stderr.slice(-2000) });
      t.equal(await sha256File(dest), bigHash, `${kind}: the sha256 of the file`);
      if (kind === 'plain') t.match(r.stderr, /229 Entering Extended Passive Mode \(\|\|\|30000\|\)/, "plain: vsftpd's own 229 reached the client");
      ms[kind].push(r.ms);
      await rm(dest);
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[2];
  t.comment(
    `64 MiB with curl, median of 5 (ms, the whole curl run): gateway ${median(ms.gateway)} [${ms.gateway.join(', ')}], ` +
      `plain relays ${median(ms.plain)} [${ms.plain.join(', ')}], direct over IPv4 ${median(ms.direct)} [${ms.direct.join(', ')}]; ` +
      `earlier, through the gateway: ${timings.join('; ')}`,
  );
});
