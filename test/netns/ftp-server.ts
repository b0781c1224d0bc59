// The FTP fixture (test/fixtures/ftp.ts) and the server's own behaviour, without the
// translator: a real vsftpd in s4 and real clients in xl, which reaches 198.18.0.2 directly over
// IPv4. curl forced to PASV, to PORT, and to NLST; a server without passive mode, one without
// active mode (and with a passive port range); a PORT naming another address, which vsftpd
// refuses itself; 60 sessions at once; a config vsftpd refuses; and stop() ending open
// sessions. The same clients through the gateway are test/netns/ftp-clients.ts.
//
// What each client sends over IPv4 (asserted below for the data-connection commands, from the
// clients' own debug output and from vsftpd's protocol log; the rest as logged by vsftpd):
//
//   curl 7.88   passive: EPSV (then PASV if EPSV is refused; --disable-epsv: PASV only)
//               active (--ftp-port -): EPRT |1|198.18.0.1|port| (then PORT if EPRT is refused)
//     list      USER anonymous, PWD, CWD pub, EPSV|EPRT, TYPE A, LIST, QUIT
//     download  USER anonymous, PWD, CWD pub, EPSV|EPRT, TYPE I, SIZE big.bin, RETR big.bin, QUIT
//     resume    … SIZE big.bin, REST <offset>, RETR big.bin, QUIT
//     upload    USER anonymous, PWD, CWD incoming, EPSV|EPRT, TYPE I, STOR name, QUIT
//     (curl -v shows every command but QUIT, which vsftpd logs all the same)
//   lftp 4.9.2  passive: PASV (ftp:prefer-epsv is off by default)
//               active (ftp:passive-mode off): PORT 198,18,0,1,p1,p2
//     cls -l    FEAT, USER anonymous, PWD, CWD /pub, PASV|PORT, LIST, TYPE I, MDTM big.bin, QUIT
//     get       FEAT, USER anonymous, PWD, TYPE I, SIZE pub/big.bin, MDTM pub/big.bin, PASV|PORT, RETR pub/big.bin, QUIT
//     put       FEAT, USER anonymous, PWD, TYPE I, PASV|PORT, STOR incoming/name, QUIT
//               (SITE UTIME after put is switched off by the fixture)
//   wget 1.21.3 passive: PASV; active (--no-passive-ftp): PORT 198,18,0,1,p1,p2
//     directory USER anonymous, SYST, PWD, TYPE I, CWD /pub, PASV|PORT, LIST -a (written out as HTML)
//     file      USER anonymous, SYST, PWD, TYPE I, CWD /pub, SIZE big.bin, PASV|PORT, RETR big.bin
//     (no QUIT: wget just closes)
//   No client sends LPSV/LPRT or EPSV ALL over IPv4; with no_anon_password=YES none sends PASS.
//   vsftpd with pasv_enable=NO answers EPSV and PASV with `550 Permission denied.` (curl exits
//   13, "Bad PASV/EPSV response: 550"); with port_enable=NO it answers EPRT and PORT the same
//   (curl exits 30). An EPRT/PORT naming an address other than the control connection's peer
//   gets `500 Illegal EPRT command.` / `500 Illegal PORT command.` (port_promiscuous=NO).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ADDR, buildNetwork } from '../fixtures/netns.js';
import { clientCommands, dataVerbs, requireFtpTools, countCommands, curlFtp, ftpUrl, lftp, makeFile, sha256File, startVsftpd, verbs } from '../fixtures/ftp.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const BIG = 'big.bin';

requireFtpTools();

const net = await buildNetwork(t);
const ftp = await startVsftpd(t, net, { port: 2121 });
const work = await mkdtemp(join(tmpdir(), 'faithd6-ftp-clients-'));
t.teardown(() => rm(work, { recursive: true, force: true }));
await makeFile(join(ftp.root, 'pub', BIG), SIZE);

t.test('curl: --disable-epsv sends PASV, --disable-eprt sends PORT, --list-only sends NLST', async (t) => {
  const pub = ftpUrl(ftp.address, ftp.port, 'pub/');
  let from = await countCommands(ftp.logFile, 'PASV');
  const pasv = await curlFtp(net, 'xl', pub, { verbose: true, epsv: false });
  t.equal(pasv.code, 0, 'passive, no EPSV: exit 0');
  t.strictSame(dataVerbs(clientCommands(pasv.stderr)), ['PASV'], 'PASV only');
  t.equal(await countCommands(ftp.logFile, 'PASV'), from + 1, 'vsftpd got one more PASV');
  t.match(pasv.stderr, /^< 227 Entering Passive Mode \(198,18,0,2,\d+,\d+\)/m, "and answered with s4's address");

  from = await countCommands(ftp.logFile, 'PORT');
  const port = await curlFtp(net, 'xl', pub, { verbose: true, active: true, eprt: false });
  t.equal(port.code, 0, 'active, no EPRT: exit 0');
  t.strictSame(dataVerbs(clientCommands(port.stderr)), ['PORT'], 'PORT only');
  t.ok(
    clientCommands(port.stderr).some((c) => /^PORT 198,18,0,1,\d+,\d+$/.test(c)),
    "naming xl's address",
  );
  t.equal(await countCommands(ftp.logFile, 'PORT'), from + 1, 'vsftpd got one more PORT');

  const names = await curlFtp(net, 'xl', pub, { verbose: true, list: true });
  t.equal(names.code, 0, '--list-only: exit 0');
  t.ok(verbs(clientCommands(names.stderr)).includes('NLST'), 'NLST');
  t.equal(names.stdout.replace(/\r/g, ''), `${BIG}\n`, 'the names only');
});

t.test('vsftpd with pasv_enable=NO: passive is refused, active still works', async (t) => {
  const nopasv = await startVsftpd(t, net, { port: 2122, pasvEnable: false });
  const small = await makeFile(join(nopasv.root, 'pub', 'small.bin'), 4 * MiB);
  const r = await curlFtp(net, 'xl', ftpUrl(nopasv.address, nopasv.port, 'pub/'), { verbose: true });
  t.equal(r.code, 13, 'curl exits 13 (CURLE_FTP_WEIRD_PASV_REPLY)');
  t.match(r.stderr, 'curl: (13) Bad PASV/EPSV response: 550', 'and says why');
  t.strictSame(dataVerbs(clientCommands(r.stderr)), ['EPSV', 'PASV'], 'it tried EPSV, then PASV');
  t.equal(r.stderr.split('\n').filter((l) => l.startsWith('< 550 Permission denied.')).length, 2, 'both answered `550 Permission denied.`');
  const replies = await nopasv.replies();
  t.equal(replies.filter((x) => x.line === '550 Permission denied.').length, 2, 'as vsftpd logged');

  const list = await curlFtp(net, 'xl', ftpUrl(nopasv.address, nopasv.port, 'pub/'), { active: true, verbose: true });
  t.equal(list.code, 0, 'active list: exit 0');
  t.match(list.stdout, 'small.bin', 'active list: the file is listed');
  const dest = join(work, 'nopasv.bin');
  const down = await curlFtp(net, 'xl', ftpUrl(nopasv.address, nopasv.port, 'pub/small.bin'), { active: true, verbose: true, output: dest });
  t.equal(down.code, 0, 'active download: exit 0');
  t.strictSame(dataVerbs(clientCommands(down.stderr)), ['EPRT'], 'over EPRT');
  t.equal(await sha256File(dest), small, 'with the right sha256');
  await rm(dest);
});

t.test('vsftpd with port_enable=NO and a passive port range: active is refused, passive uses the range', async (t) => {
  const noport = await startVsftpd(t, net, { port: 2123, portEnable: false, pasvMinPort: 30000, pasvMaxPort: 30009 });
  const r = await curlFtp(net, 'xl', ftpUrl(noport.address, noport.port, 'pub/'), { active: true, verbose: true });
  t.equal(r.code, 30, 'curl exits 30 (CURLE_FTP_PORT_FAILED)');
  t.strictSame(dataVerbs(clientCommands(r.stderr)), ['EPRT', 'PORT'], 'it tried EPRT, then PORT');
  t.equal(r.stderr.split('\n').filter((l) => l.startsWith('< 550 Permission denied.')).length, 2, 'both answered `550 Permission denied.`');

  for (let i = 0; i < 3; i++) {
    const p = await curlFtp(net, 'xl', ftpUrl(noport.address, noport.port, 'pub/'), { verbose: true });
    t.equal(p.code, 0, 'passive: exit 0');
    const port = Number(/^< 229 Entering Extended Passive Mode \(\|\|\|(\d+)\|\)/m.exec(p.stderr)?.[1]);
    t.ok(port >= 30000 && port <= 30009, `the EPSV reply's port ${port} is in pasv_min_port..pasv_max_port`);
  }
  const lf = await lftp(net, 'xl', [`open ${ftpUrl(noport.address, noport.port)}`, 'cls pub/']);
  const m = /^<--- 227 Entering Passive Mode \((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/m.exec(lf.stderr);
  t.equal(m?.slice(1, 5).join('.'), ADDR.server4, "lftp's PASV reply names s4's address");
  const port = Number(m?.[5]) * 256 + Number(m?.[6]);
  t.ok(port >= 30000 && port <= 30009, `and a port in the range (${port})`);
});

t.test('60 sessions at once are all let in', async (t) => {
  const N = 60;
  // In xl: open N control connections, and only once every one has logged in close them all.
  const script = `const net=require('net');const [host,port,n]=process.argv.slice(1);let ok=0,bad=0;const socks=[];
for(let i=0;i<+n;i++){const s=net.connect({host,port:+port});socks.push(s);let buf='',sent=false;
s.on('data',(d)=>{buf+=d;if(!sent&&/^220 /m.test(buf)){sent=true;s.write('USER anonymous\\r\\n')}
else if(sent&&/^230 /m.test(buf)){buf='';sent=null;if(++ok===+n){console.log(JSON.stringify({ok,bad}));for(const x of socks)x.end('QUIT\\r\\n')}}
else if(/^[45]\\d\\d /m.test(buf)){bad++;console.log(JSON.stringify({ok,bad,reply:buf}));process.exit(1)}});
s.on('error',(e)=>{console.log(JSON.stringify({error:e.code}));process.exit(1)})}`;
  const { stdout } = await net.run('xl', process.execPath, ['-e', script, ftp.address, String(ftp.port), String(N)]);
  t.strictSame(JSON.parse(stdout.trim().split('\n')[0]!), { ok: N, bad: 0 }, `${N} logged in at the same time`);
});

t.test('a config vsftpd refuses fails startVsftpd with its reason', async (t) => {
  await t.rejects(startVsftpd(t, net, { port: 2124, extra: ['no_such_option=YES'] }), {
    message: /did not listen on 198\.18\.0\.2:2124 \(it exited: .*500 OOPS: unrecognised variable in config file: no_such_option/s,
  });
});

t.test('stop() ends the sessions too', async (t) => {
  const server = await startVsftpd(t, net, { port: 2125 });
  const sessions = async (): Promise<number[]> => {
    const { stdout } = await net.run('s4', 'ps', ['-eo', 'pid=,args=']);
    return stdout
      .split('\n')
      .filter((l) => l.trim().endsWith(`vsftpd ${server.configFile}`))
      .map((l) => Number(l.trim().split(' ')[0]));
  };
  // A client in xl that logs in and then waits: its session stays open until the server goes.
  const script = `const s=require('net').connect({host:process.argv[1],port:+process.argv[2]});let b='';
s.on('data',(d)=>{b+=d;if(/^220 /m.test(b)){b='';s.write('USER anonymous\\r\\n')}else if(/^230 /m.test(b)){b='';console.log(JSON.stringify({event:'in'}))}});
s.on('close',()=>{console.log(JSON.stringify({event:'closed'}));process.exit(0)})`;
  const client = net.spawn('xl', process.execPath, ['-e', script, server.address, String(server.port)], { label: 'xl: idle ftp client' });
  await client.waitFor((l) => l.event === 'in', { timeout: 5000, what: 'login' });
  t.ok((await sessions()).length >= 2, 'the listener and its session processes run');
  await server.stop();
  t.strictSame(await sessions(), [], 'none is left after stop()');
  await client.waitFor((l) => l.event === 'closed', { timeout: 5000, what: 'the control connection closed' });
  t.pass('the client saw its control connection close');
});

t.test("vsftpd refuses an EPRT/PORT naming an address other than the control connection's (port_promiscuous=NO)", async (t) => {
  const r = await curlFtp(net, 'xl', ftpUrl(ftp.address, ftp.port, 'pub/'), { verbose: true, args: ['--ftp-port', '127.0.0.1'] });
  t.equal(r.code, 30, 'curl exits 30 (CURLE_FTP_PORT_FAILED)');
  t.strictSame(dataVerbs(clientCommands(r.stderr)), ['EPRT', 'PORT'], 'after EPRT |1|127.0.0.1|…| and PORT 127,0,0,1,…');
  t.match(r.stderr, /^< 500 Illegal EPRT command\.\r?$/m, 'EPRT: `500 Illegal EPRT command.`');
  t.match(r.stderr, /^< 500 Illegal PORT command\.\r?$/m, 'PORT: `500 Illegal PORT command.`');
});
