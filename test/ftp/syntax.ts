// The FTP syntax the gateway reads: reply lines, the 227 address, EPRT and LPRT arguments, the
// replies it writes, and the bounded line buffer that puts lines together across reads.
import t from 'tap';
import { LineBuffer, OVERLONG } from '../../src/ftp/lines.js';
import { parse227, parseCommand, parseEprt, parseLprt, parseReplyLine, reply228, reply229 } from '../../src/ftp/syntax.js';
import { v4, v6 } from '../fixtures/addresses.js';

const b = (text: string) => Buffer.from(text, 'latin1');

t.test('reply lines: the code, and whether the reply ends there', async (t) => {
  t.same(parseReplyLine(b('227 Entering\r\n')), { code: 227, last: true });
  t.same(parseReplyLine(b('211-Features:\r\n')), { code: 211, last: false });
  t.same(parseReplyLine(b('200\r\n')), { code: 200, last: true });
  t.same(parseReplyLine(b('200')), { code: 200, last: true });
  for (const text of [' EPSV\r\n', '21\r\n', '2000 x\r\n', 'abc def\r\n', '']) t.equal(parseReplyLine(b(text)), undefined, JSON.stringify(text));
});

t.test('commands: the verb in capitals, the argument trimmed, telnet commands skipped', async (t) => {
  t.same(parseCommand(b('epsv 2\r\n')), { verb: 'EPSV', arg: '2' });
  t.same(parseCommand(b('EPSV\n')), { verb: 'EPSV', arg: '' });
  t.same(parseCommand(b('\xff\xf4\xff\xf2ABOR\r\n')), { verb: 'ABOR', arg: '' });
  t.same(parseCommand(b('STOR a  b \r\n')), { verb: 'STOR', arg: 'a  b' });
});

t.test('227: the first six numbers, wherever the server put them (RFC 1123 §4.1.2.6)', async (t) => {
  t.same(parse227('227 Entering Passive Mode (198,18,0,2,117,48).'), { ipv4: v4('198.18.0.2'), port: 30000 });
  t.same(parse227('227 =198,18,0,2,0,21'), { ipv4: v4('198.18.0.2'), port: 21 });
  t.same(parse227('227 Entering Passive Mode 198, 18, 0, 2, 255, 255'), { ipv4: v4('198.18.0.2'), port: 65535 });
  t.equal(parse227('227 Entering Passive Mode (198,18,0,256,1,1)'), undefined, 'a number over 255');
  t.equal(parse227('227 Entering Passive Mode (198,18,0,2,0,0)'), undefined, 'port 0');
  t.equal(parse227('227 Entering Passive Mode'), undefined);
});

t.test('EPRT (RFC 2428 §2) and LPRT (RFC 1639)', async (t) => {
  t.same(parseEprt('|2|2001:db8:c6::2|45678|'), { ok: true, address: v6('2001:db8:c6::2'), port: 45678 });
  t.same(parseEprt('#2#2001:db8:c6::2#1#'), { ok: true, address: v6('2001:db8:c6::2'), port: 1 });
  t.same(parseEprt('|1|198.18.0.2|45678|'), { ok: false, why: 'protocol' });
  t.same(parseEprt('|3|x|1|'), { ok: false, why: 'protocol' });
  for (const bad of ['', '|2|2001:db8::1|70000|', '|2|2001:db8::1|1', '|2|198.18.0.2|1|', ' 2 ::1 1 ', '|x|::1|1|'])
    t.same(parseEprt(bad), { ok: false, why: 'syntax' }, JSON.stringify(bad));
  t.same(parseLprt('6,16,32,1,13,184,0,198,0,0,0,0,0,0,0,0,0,2,2,178,112'), { ok: true, address: v6('2001:db8:c6::2'), port: 45680 });
  t.same(parseLprt('4,4,198,18,0,2,2,1,1'), { ok: false, why: 'protocol' });
  t.same(parseLprt('6,16,1,2'), { ok: false, why: 'syntax' });
});

t.test('the replies the gateway writes', async (t) => {
  t.equal(reply229(50000), '229 Entering Extended Passive Mode (|||50000|)\r\n');
  t.equal(reply228(v6('2001:db8::1'), 258), '228 Entering Long Passive Mode (6,16,32,1,13,184,0,0,0,0,0,0,0,0,0,0,0,1,2,1,2)\r\n');
});

t.test('the line buffer: lines across reads, several in one, a bare LF, and the bound', async (t) => {
  const lines = new LineBuffer(16);
  lines.push(b('USER an'));
  t.equal(lines.next(), undefined);
  lines.push(b('onymous\r\nPASS x\nNO'));
  t.equal(String(lines.next()), 'USER anonymous\r\n');
  t.equal(String(lines.next()), 'PASS x\n');
  t.equal(lines.next(), undefined);
  t.equal(String(lines.take()), 'NO', 'what is left, for a FIN');
  lines.push(b('x'.repeat(17)));
  t.equal(lines.next(), OVERLONG, 'no line end within the bound');
  t.equal(lines.length, 0, 'and nothing is kept');
  lines.push(b(`${'y'.repeat(16)}\r\n`));
  t.equal(lines.next(), OVERLONG, 'a line end past the bound');
  lines.push(b(`${'z'.repeat(14)}\r\n`));
  t.equal(String(lines.next()), `${'z'.repeat(14)}\r\n`, 'exactly the bound is a line');
});
