// The FTP gateway against clients and servers that do what they should not, each case asserting
// what the client got and that nothing was dialled that should not be (the translator's TCP
// ActiveOpens counter, which counts every connect() it makes): a server whose 227 names another
// host (an FTP bounce), an EPRT naming a third party, a data connection from another address of
// the client's or to another translated address, a 1 MiB line without a line end, a thousand
// EPSVs without a transfer, data connections under the rules and limits as they are now, and a
// slow transfer that keeps its control connection from idling out (RFC 6384 §12).
import { fileURLToPath } from 'node:url';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parse, stringify } from 'yaml';
import { ADDR, buildNetwork, translate, type Line, type Proc } from '../fixtures/netns.js';
import { PERMIT_CLIENT_TO_S4, runCli, startDaemon } from '../fixtures/daemon.js';
import { makeFile, requireFtpTools, startVsftpd } from '../fixtures/ftp.js';

requireFtpTools();

const TALK = fileURLToPath(new URL('../fixtures/ftp-talk.js', import.meta.url));
/** A second address of the client's; deprecated, so that connections come from ADDR.client6 unless bound to it. */
const OTHER6 = '2001:db8:c6::3';

const net = await buildNetwork(t);
await net.run('c6', 'ip', ['addr', 'add', `${OTHER6}/64`, 'dev', 'eth0', 'nodad', 'preferred_lft', '0']);
const dir = await mkdtemp(join(tmpdir(), 'faithd6-ftp-hostile-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));

const ftp = await startVsftpd(t, net, { port: 21 });
// A server that names another host in its 227 (vsftpd's pasv_address): a bounce, or a broken NAT.
const bouncer = await startVsftpd(t, net, { port: 2121, extra: [`pasv_address=${ADDR.closed4}`] });
// A slow one: 1 MiB at 256 KiB/s takes 4 s, twice the idle timeout below.
const slow = await startVsftpd(t, net, { port: 2122, extra: ['anon_max_rate=262144'] });
const slowSum = await makeFile(join(slow.root, 'pub', 'slow.bin'), 1024 * 1024);

// A broken server: a multi-line greeting, then a reply line of 10,000 bytes to LONG.
const broken = net.spawn('s4', process.execPath, [
  '-e',
  `require('net').createServer((s) => {
     s.on('error', () => {});
     s.write('220-Welcome\\r\\n220-  to a broken server\\r\\n220 ready\\r\\n');
     s.on('data', (d) => s.write(String(d).startsWith('LONG') ? '200-' + 'x'.repeat(10000) + '\\r\\n' : '200 ok\\r\\n'));
   }).listen(2125, '${ADDR.server4}', () => console.log(JSON.stringify({ event: 'listening' })));`,
]);
await broken.waitFor((l) => l.event === 'listening', { timeout: 10_000 });

const config = {
  services: [
    { port: 21, protocol: 'ftp' as const },
    { port: 2121, protocol: 'ftp' as const },
    { port: 2122, protocol: 'ftp' as const },
    { port: 2125, protocol: 'ftp' as const },
  ],
  timeouts: { idle: '2s' },
  // No rate limit here: the repeated transfers below open 300 data connections in a few seconds.
  limits: { connectionsPerSource: 3, newConnectionsPerSecond: 0 },
  log: { level: 'debug' },
};
const daemon = await startDaemon(t, net, config);
const dst = translate(ADDR.server4);

/** Runs ftp-talk in `from` (c6) with these steps on the control connection to dst:`port`; its events. */
interface TalkOptions {
  port?: number;
  local?: string;
  timeout?: number;
}

/** Starts ftp-talk in c6 with these steps on a control connection to dst:`port` (default 21). */
function spawnTalk(steps: unknown[], opts: TalkOptions = {}): Proc {
  const spec = { host: dst, port: opts.port ?? 21, local: opts.local, timeout: (opts.timeout ?? 20_000) / 1000, steps };
  return net.spawn('c6', process.execPath, [TALK, JSON.stringify(spec)], { label: 'c6: ftp-talk' });
}

async function talk(steps: unknown[], opts: TalkOptions = {}): Promise<Line[]> {
  const proc = spawnTalk(steps, opts);
  const exit = await proc.waitExit((opts.timeout ?? 20_000) + 5000);
  if (exit.code !== 0) throw new Error(`ftp-talk exited ${exit.code}; its last events: ${JSON.stringify(proc.lines.slice(-8))}`);
  await closedLine(proc.lines);
  return proc.lines;
}

/**
 * Waits for the control connection's log line (written after its data connections'): a test
 * that waits for it leaves no session of its own to the next.
 */
async function closedLine(lines: Line[]): Promise<void> {
  const port = lines.find((l) => l.event === 'connected')?.port as number | undefined;
  // A connection reset at once may never have seen its 'connect': its line is written already.
  if (port !== undefined) await daemon.waitClosed((l) => String(l.client).endsWith(`]:${port}`), 5000);
}

const replies = (lines: Line[]) => lines.filter((l) => l.event === 'reply').map((l) => String(l.text));
const LOGIN = [{ expect: true }, { send: 'USER anonymous\r\n' }, { expect: true }];
const BINARY = [{ send: 'TYPE I\r\n' }, { expect: true }];

/** EPSV, then RETR `file` over it: its 150 and its 226 read (with `meanwhile` between them), the data read whole. */
function passiveRetr(file: string, meanwhile: unknown[] = []): unknown[] {
  return [
    { send: 'EPSV\r\n' },
    { expect: true },
    { data: {}, wait: false },
    { send: `RETR ${file}\r\n` },
    { expect: true },
    ...meanwhile,
    { expect: true },
    { dataDone: true },
  ];
}

/** talk(), and how many connections the translator opened meanwhile (its TCP ActiveOpens). */
async function talkDialling(steps: unknown[], opts: TalkOptions = {}): Promise<{ lines: Line[]; opened: number }> {
  const before = (await net.tcpCounters('xl')).ActiveOpens ?? 0;
  const lines = await talk(steps, opts);
  return { lines, opened: ((await net.tcpCounters('xl')).ActiveOpens ?? 0) - before };
}

t.test('a 227 naming another host gets 425, and nothing is dialled but the control connection', async (t) => {
  const { lines, opened } = await talkDialling([...LOGIN, { send: 'EPSV\r\n' }, { expect: true }, { send: 'QUIT\r\n' }, { expect: true }], { port: 2121 });
  t.match(replies(lines)[2], /^425 /, 'the client got 425');
  t.equal(opened, 1, 'one connection dialled: the control connection to vsftpd');
  t.ok(
    daemon.proc.lines.some((l) => l.msg === 'ftp: passive-mode address refused' && String(l.named).startsWith(`${ADDR.closed4}:`)),
    'logged, with the address the server named',
  );
  t.equal((await bouncer.commands()).filter((c) => c.verb === 'PASV').length, 1, 'vsftpd got its PASV');
});

t.test('an EPRT naming a third party is refused with 501; the server never hears of it', async (t) => {
  const from = (await ftp.commands()).length;
  const { lines, opened } = await talkDialling([
    ...LOGIN,
    { send: 'EPRT |2|2001:db8:c6::99|2121|\r\n' },
    { expect: true },
    { send: 'LPRT 6,16,32,1,13,184,0,198,0,0,0,0,0,0,0,0,0,153,2,8,73\r\n' },
    { expect: true },
  ]);
  t.strictSame(
    replies(lines)
      .slice(2)
      .map((r) => r.slice(0, 4)),
    ['501 ', '501 '],
  );
  t.equal(opened, 1, 'nothing dialled but the control connection');
  t.notOk(
    (await ftp.commands()).slice(from).some((c) => c.verb === 'PORT' || c.verb === 'EPRT' || c.verb === 'LPRT'),
    'no PORT, EPRT or LPRT reached vsftpd',
  );
});

t.test("a data connection from another address of the client's is refused; the client's own still gets through", async (t) => {
  await makeFile(join(ftp.root, 'pub', 'list-me'), 10);
  const { lines, opened } = await talkDialling([
    ...LOGIN,
    { send: 'CWD pub\r\n' },
    { expect: true },
    { send: 'EPSV\r\n' },
    { expect: true },
    { data: { local: OTHER6 } },
    { data: {}, wait: false },
    { send: 'LIST\r\n' },
    { expect: true },
    { expect: true },
    { dataDone: true },
  ]);
  const data = lines.filter((l) => l.event === 'data');
  t.match(data[0], { end: 'ECONNRESET', bytes: 0 }, 'from the other address: reset, nothing read');
  t.match(data[1], { end: 'eof' }, "from the control connection's address: the listing");
  t.ok(Number(data[1]?.bytes) > 0, 'which has bytes');
  t.equal(opened, 2, 'dialled: the control connection and one data connection');
  t.ok(
    daemon.proc.lines.some((l) => String(l.msg).startsWith('ftp: data connection refused') && String(l.from).includes(OTHER6)),
    'the refusal is logged with its source',
  );
});

t.test('a data connection to another translated address is refused, even to a permitted server', async (t) => {
  const lines = await talk([...LOGIN, { send: 'EPSV\r\n' }, { expect: true }, { data: { host: translate(ADDR.closed4) } }]);
  t.match(
    lines.find((l) => l.event === 'data'),
    { end: 'ECONNRESET', bytes: 0 },
  );
});

t.test('a 1 MiB line without a line end gets 500, and the control connection is closed', async (t) => {
  const from = (await ftp.commands()).length;
  const mark = daemon.proc.mark();
  const lines = await talk([{ expect: true }, { flood: 1024 * 1024 }, { close: true }]);
  const closed = lines.find((l) => l.event === 'closed');
  t.match(closed?.received, /^500 Command line too long\.\r\n$/, 'the 500 arrived, and nothing else');
  const line = await daemon.waitClosed((l) => l.port === 21, 5000, mark);
  t.equal(line.end, 'protocol error', "the control connection's end");
  t.match(line.error, /a command line over 4096 bytes/);
  t.ok(Number(line.up) < 1024 * 1024, 'faithd6 stopped reading it', { up: line.up });
  t.equal((await ftp.commands()).length, from, 'vsftpd got none of it');
});

t.test('a thousand EPSVs without a transfer hold at most two data listeners', async (t) => {
  const pid = daemon.workerPid(21);
  const fds = async () => (await net.run('xl', 'ls', [`/proc/${pid}/fd`])).stdout.trim().split('\n').length;
  const listening = async () => (await net.run('xl', 'ss', ['-Hltn'])).stdout.split('\n').filter((l) => l.trim() !== '' && !/:(21|2121|2122)\s/.test(l)).length;
  const before = { fds: await fds(), listening: await listening() };
  const proc = spawnTalk(
    [...LOGIN, { repeat: 1000, steps: [{ send: 'EPSV\r\n' }, { expect: true }] }, { hold: 3000 }, { send: 'QUIT\r\n' }, { expect: true }],
    { port: 21, timeout: 60_000 },
  );
  await proc.waitFor((l) => l.event === 'holding', { timeout: 60_000, what: 'the thousand EPSVs' });
  const during = { fds: await fds(), listening: await listening() };
  t.equal(during.listening - before.listening, 2, 'two listeners, the newest ones', { before, during });
  t.ok(during.fds - before.fds <= 4, "the worker's descriptors: the control connection's two and the two listeners", { before, during });
  const got = proc.lines.filter((l) => l.event === 'reply').slice(2, 1002);
  t.equal(got.filter((l) => /^229 /.test(String(l.text))).length, 1000, 'each EPSV got its 229');
  await proc.waitExit(10_000);
  await closedLine(proc.lines);
  t.strictSame({ fds: await fds(), listening: await listening() }, before, 'after QUIT: nothing left');
});

t.test("data connections count toward the source's connections: past the limit an EPSV gets 425", async (t) => {
  // connectionsPerSource is 3. A control connection and its data connection take two.
  const mark = daemon.proc.mark();
  const holder = spawnTalk(
    [...LOGIN, { send: 'EPSV\r\n' }, { expect: true }, { data: {}, wait: false }, { hold: 3000 }, { send: 'QUIT\r\n' }, { expect: true }],
    { port: 2122, timeout: 30_000 },
  );
  await holder.waitFor((l) => l.event === 'holding', { timeout: 10_000 });
  // A second control connection is the third: admitted. Its EPSV would be the fourth.
  const second = spawnTalk([...LOGIN, { send: 'EPSV\r\nNOOP\r\n' }, { expect: true }, { expect: true }, { hold: 1000 }], { port: 2122, timeout: 30_000 });
  await second.waitFor((l) => l.event === 'holding', { timeout: 10_000 });
  t.strictSame(
    second.lines.filter((l) => l.event === 'reply').map((l) => l.text),
    ['220 (vsFTPd 3.0.3)\r\n', '230 Login successful.\r\n', "425 Can't open data connection: connections per source.\r\n", '200 NOOP ok.\r\n'],
    'the EPSV got 425 with the limit it hit, and nothing reached vsftpd for it; the session goes on',
  );
  const refusedData = await daemon.proc.waitFor((l) => l.end === 'limit' && l.ftp === 'data', { timeout: 5000, from: mark });
  t.equal(refusedData.reason, 'connections per source', 'logged as a data connection refused at its limit');
  const fourth = await talk([{ expect: true }], { port: 2122 });
  t.match(
    fourth.find((l) => l.event === 'reply'),
    { code: 0 },
    'a third control connection, the fourth connection, is refused: no greeting',
  );
  const refused = await daemon.proc.waitFor((l) => l.msg === 'relay closed' && l.end === 'limit' && l.ftp === undefined, { timeout: 5000, from: mark });
  t.equal(refused.reason, 'connections per source');
  await holder.waitExit(10_000);
  await second.waitExit(10_000);
  await closedLine(holder.lines);
  await closedLine(second.lines);
});

t.test('a data connection under the rules as they are now: a reload that denies the server refuses it', async (t) => {
  const proc = spawnTalk(
    // NOOPs while the test reloads, so that the control connection does not idle out (2 s).
    [...LOGIN, { send: 'EPSV\r\n' }, { expect: true }, { repeat: 8, steps: [{ hold: 500 }, { send: 'NOOP\r\n' }, { expect: true }] }, { data: {} }],
    { port: 21, timeout: 30_000 },
  );
  await proc.waitFor((l) => l.event === 'holding', { timeout: 10_000 });
  const original = await readFile(daemon.configFile, 'utf8');
  const denying = parse(original) as { rules: unknown[] };
  denying.rules = [{ action: 'deny', from: ['2001:db8:c6::/64'], to: [`${ADDR.server4}/32`] }, PERMIT_CLIENT_TO_S4];
  await writeFile(daemon.configFile, stringify(denying));
  t.teardown(() => writeFile(daemon.configFile, original));
  const mark = daemon.proc.mark();
  const r = await runCli(net, ['reload', '-c', daemon.configFile], 30_000, false);
  t.equal(r.code, 0, 'reloaded', { stderr: r.stderr });
  await proc.waitExit(15_000);
  await closedLine(proc.lines);
  t.match(
    proc.lines.find((l) => l.event === 'data'),
    { end: 'ECONNRESET', bytes: 0 },
    'the data connection is reset',
  );
  const line = await daemon.proc.waitFor((l) => l.msg === 'relay closed' && l.end === 'denied' && l.ftp === 'data', { timeout: 5000, from: mark });
  t.equal(line.backend, `${ADDR.server4}:21`, 'denied by the new rule, and logged as a data connection');
  await writeFile(daemon.configFile, original);
  t.equal((await runCli(net, ['reload', '-c', daemon.configFile], 30_000, false)).code, 0, 'and back');
});

t.test('a slow transfer keeps its control connection from idling out; after it, idling counts again', async (t) => {
  const mark = daemon.proc.mark();
  const lines = await talk([...LOGIN, ...BINARY, ...passiveRetr('pub/slow.bin'), { close: true }], { port: 2122, timeout: 30_000 });
  const data = lines.find((l) => l.event === 'data');
  t.equal(data?.sha256, slowSum, 'the 1 MiB came whole');
  t.match(replies(lines).at(-1), /^226 /, 'and the control connection was there to say 226');
  const line = await daemon.waitClosed((l) => l.port === 2122, 10_000, mark);
  t.equal(line.end, 'idle timeout', 'then, with nothing to do, the control connection idled out');
  const transfer = daemon.proc.filter((l) => l.msg === 'ftp data closed' && l.port === 2122, mark)[0];
  t.ok(Number(transfer?.ms) > 2000, 'the transfer took longer than the idle timeout', { ms: transfer?.ms });
  const after = Date.parse(String(line.time)) - Date.parse(String(transfer?.time));
  t.ok(after >= 1900, 'the control connection idled out an idle timeout after it ended, not during it', { after });
});

t.test('pipelined in one write: ALGS, LPSV, EPSV ALL answered in order, among the server replies', async (t) => {
  await makeFile(join(ftp.root, 'pub', 'pipelined'), 1000);
  const lines = await talk([
    { expect: true },
    { send: 'USER anonymous\r\nALGS STATUS64\r\nNOOP\r\nCWD pub\r\nLPSV\r\n' },
    ...Array.from({ length: 5 }, () => ({ expect: true })),
    { data: {}, wait: false },
    { send: 'LIST\r\n' },
    { expect: true },
    { expect: true },
    { dataDone: true },
    { send: 'EPSV ALL\r\nPORT 198,18,0,9,1,1\r\nLPSV\r\nEPSV\r\n' },
    ...Array.from({ length: 4 }, () => ({ expect: true })),
    // A command cut in two reads (faithd's own parser took only a command that came whole).
    { send: 'EP' },
    { hold: 200 },
    { send: 'SV\r\n' },
    { expect: true },
  ]);
  t.strictSame(
    replies(lines).map((r) => r.slice(0, 3)),
    ['220', '230', '216', '200', '250', '228', '150', '226', '200', '503', '503', '229', '229'],
    "each reply in its command's turn: the gateway's 216 after the server's 230; after EPSV ALL only EPSV opens a data connection",
  );
  t.match(
    replies(lines)[5],
    /^228 Entering Long Passive Mode \(6,16,0,100,255,155,0,1,0,0,0,0,0,0,198,18,0,2,2,\d+,\d+\)\r\n$/,
    'LPSV: 228 with the translated address',
  );
  t.match(
    lines.find((l) => l.event === 'data'),
    { end: 'eof' },
    'and its data connection carried the listing',
  );
});

const RESET_FILE = 64 * 1024 * 1024;
for (const mode of ['passive', 'active'] as const) {
  t.test(`${mode}: a client that resets its data connection mid-transfer: the server sees the reset, the log says who`, async (t) => {
    // Far more than the socket buffers on the way can hold (autotuned, they reached 8 MiB under
    // load in CI, and vsftpd then finished writing before the reset came back: 226, not 426).
    await makeFile(join(ftp.root, 'pub', 'reset-me'), RESET_FILE);
    const mark = daemon.proc.mark();
    const open =
      mode === 'passive'
        ? [{ send: 'EPSV\r\n' }, { expect: true }, { data: { resetAfter: 100_000 }, wait: false }]
        : [{ eprt: { resetAfter: 100_000 }, wait: false }, { expect: true }];
    const lines = await talk([...LOGIN, ...BINARY, ...open, { send: 'RETR pub/reset-me\r\n' }, { expect: true }, { expect: true }, { dataDone: true }]);
    t.match(
      lines.find((l) => l.event === 'data'),
      { end: 'reset sent' },
    );
    t.match(replies(lines).at(-1), /^426 /, 'vsftpd saw its data connection fail: 426');
    const data = await daemon.proc.waitFor((l) => l.msg === 'ftp data closed' && l.port === 21, { timeout: 5000, from: mark });
    t.match(data, { end: 'reset by client', mode }, 'logged as a reset by the client');
    t.ok(Number(data.down) >= 100_000 && Number(data.down) < RESET_FILE, 'with the bytes that went down before it', { down: data.down });
  });
}

t.test('transfers back to back in one session, repeated: every file whole, in both modes', async (t) => {
  const size = 70_000; // over one read of the relay's shared buffer
  const sum = await makeFile(join(ftp.root, 'pub', 'round.bin'), size);
  const ROUNDS = 150;
  for (const mode of ['passive', 'active'] as const) {
    const open = mode === 'passive' ? [{ send: 'EPSV\r\n' }, { expect: true }, { data: {}, wait: false }] : [{ eprt: {}, wait: false }, { expect: true }];
    const round = [...open, { send: 'RETR pub/round.bin\r\n' }, { expect: true }, { expect: true }, { dataDone: true }];
    const started = Date.now();
    const lines = await talk([...LOGIN, ...BINARY, { repeat: ROUNDS, steps: round }, { send: 'QUIT\r\n' }, { expect: true }], {
      timeout: 20_000,
    });
    const data = lines.filter((l) => l.event === 'data');
    const failures = data.filter((l) => l.end !== 'eof' || l.bytes !== size || l.sha256 !== sum).length + (ROUNDS - data.length);
    const complete = replies(lines).filter((r) => r.startsWith('226 ')).length;
    t.equal(failures, 0, `${mode}: ${failures} failures in ${ROUNDS} rounds (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    t.equal(complete, ROUNDS, `${mode}: and ${complete} replies 226`);
  }
});

t.test('a server reply line over 8 KiB: 421 to the client, and the control connection is closed', async (t) => {
  const mark = daemon.proc.mark();
  const lines = await talk([{ expect: true }, { send: 'NOOP\r\n' }, { expect: true }, { send: 'LONG\r\n' }, { close: true }], { port: 2125 });
  t.equal(replies(lines)[0], '220-Welcome\r\n220-  to a broken server\r\n220 ready\r\n', 'the multi-line greeting passed byte for byte');
  t.equal(replies(lines)[1], '200 ok\r\n');
  t.match(lines.find((l) => l.event === 'closed')?.received, /^421 The server sent a line too long; closing the control connection\.\r\n$/);
  const line = await daemon.waitClosed((l) => l.port === 2125, 5000, mark);
  t.match(line, { end: 'protocol error', error: 'a reply line over 8192 bytes' });
});

t.test("active mode: a connection to the gateway's listener from another IPv4 host is refused; the server's still gets through", async (t) => {
  await makeFile(join(ftp.root, 'pub', 'active.bin'), 100_000);
  const from = (await ftp.commands()).length;
  const proc = spawnTalk(
    [
      ...LOGIN,
      ...BINARY,
      { eprt: {}, wait: false },
      { expect: true },
      { hold: 1500 },
      { send: 'RETR pub/active.bin\r\n' },
      { expect: true },
      { expect: true },
      { dataDone: true },
    ],
    { port: 21, timeout: 30_000 },
  );
  await proc.waitFor((l) => l.event === 'holding', { timeout: 10_000 });
  const port = (await ftp.commands()).slice(from).find((c) => c.verb === 'PORT');
  const [, p1, p2] = /,(\d+),(\d+)$/.exec(port?.line ?? '') ?? [];
  t.ok(p1 !== undefined, 'vsftpd got a PORT naming the gateway', { port });
  // From s4's other address, to the port the PORT named.
  const script = `const s=require('net').connect({host:'${ADDR.xl4}',port:${Number(p1) * 256 + Number(p2)},localAddress:'${ADDR.closed4}'});s.on('data',()=>{});s.on('error',(e)=>{console.log(e.code);process.exit(0)});s.on('close',()=>{console.log('closed');process.exit(0)})`;
  const { stdout } = await net.run('s4', process.execPath, ['-e', script]);
  t.equal(stdout.trim(), 'ECONNRESET', 'reset');
  await proc.waitExit(15_000);
  await closedLine(proc.lines);
  t.match(
    proc.lines.find((l) => l.event === 'data'),
    { end: 'eof', bytes: 100_000 },
    "the server's own connection came through after it",
  );
  t.ok(
    daemon.proc.lines.some((l) => l.msg === 'ftp: data connection refused (not from the backend)' && String(l.from).startsWith(`${ADDR.closed4}:`)),
    'the refusal is logged',
  );
});

// Last: it stops the daemon.
t.test('a stop drains an FTP session: its transfer finishes, it may start another, and then faithd6 exits', async (t) => {
  const small = await makeFile(join(slow.root, 'pub', 'after.bin'), 10_000);
  const proc = spawnTalk(
    [...LOGIN, ...BINARY, ...passiveRetr('pub/slow.bin', [{ hold: 500 }]), ...passiveRetr('pub/after.bin'), { send: 'QUIT\r\n' }, { expect: true }],
    { port: 2122, timeout: 30_000 },
  );
  await proc.waitFor((l) => l.event === 'holding', { timeout: 10_000 });
  const stopping = Date.now();
  const exited = daemon.stop(30_000);
  const talked = await proc.waitExit(30_000);
  const exit = await exited;
  t.equal(talked.code, 0, 'the session ran to its QUIT');
  const data = proc.lines.filter((l) => l.event === 'data');
  t.match(data, [{ sha256: slowSum }, { sha256: small }], 'the transfer under way when the stop came finished whole, and the next one after it');
  t.match(replies(proc.lines).at(-1), /^221 /);
  t.equal(exit.code, 0, 'then faithd6 exited 0');
  t.ok(Date.now() - stopping >= 1000, 'after the session, not at once');
});
