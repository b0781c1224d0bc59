// The FTP gateway's interpreter, exact bytes in and out: what each command and reply becomes,
// what passes untouched, the order of the gateway's own replies among the server's, and what it
// refuses (FTP bounce in either mode) without opening anything.
import t from 'tap';
import { FtpControl, MAX_HELD_REPLY, ProtocolError, type ActiveListener } from '../../src/ftp/control.js';
import { v6 } from '../fixtures/addresses.js';

const CLIENT = v6('2001:db8:c6::2');
const DIALLED = v6('64:ff9b:1::c612:2');
/** 198.18.0.2, the backend. */
const BACKEND = (198 << 24) | (18 << 16) | 2;
/** 198.18.0.1, the gateway's side of the IPv4 network. */
const GATEWAY4 = ((198 << 24) | (18 << 16) | 1) >>> 0;

/** An interpreter with its actions recorded, as text. */
function rig(opts: { passivePort?: number | string; activePort?: number | string } = {}) {
  const toServer: string[] = [];
  const toClient: string[] = [];
  const passive: { ipv4: number; port: number }[] = [];
  const active: number[] = [];
  const cancelled: number[] = [];
  const notes: string[] = [];
  let opaque = 0;
  const control = new FtpControl(
    { client: CLIENT, dialled: DIALLED, backend: BACKEND >>> 0 },
    {
      toServer: (b) => toServer.push(Buffer.from(b).toString('latin1')),
      toClient: (b) => toClient.push(Buffer.from(b).toString('latin1')),
      passive: (server) => {
        passive.push(server);
        return opts.passivePort ?? 50000;
      },
      active: (port): ActiveListener | string => {
        active.push(port);
        const ours = opts.activePort ?? 40001;
        if (typeof ours === 'string') return ours;
        return { ipv4: GATEWAY4, port: ours, cancel: () => cancelled.push(ours) };
      },
      opaque: () => {
        opaque += 1;
      },
      note: (event) => notes.push(event),
    },
  );
  const client = (text: string) => {
    for (const line of text.split(/(?<=\n)/)) if (line !== '') control.fromClient(Buffer.from(line, 'latin1'));
  };
  const server = (text: string) => {
    for (const line of text.split(/(?<=\n)/)) if (line !== '') control.fromServer(Buffer.from(line, 'latin1'));
  };
  return {
    control,
    client,
    server,
    toServer,
    toClient,
    passive,
    active,
    cancelled,
    notes,
    get opaque() {
      return opaque;
    },
  };
}

/** A rig past the greeting and a login, with what was written so far forgotten. */
function loggedIn(opts?: Parameters<typeof rig>[0]) {
  const r = rig(opts);
  r.server('220 (vsFTPd 3.0.3)\r\n');
  r.client('USER anonymous\r\n');
  r.server('230 Login successful.\r\n');
  r.toServer.length = 0;
  r.toClient.length = 0;
  return r;
}

t.test('what the gateway does not change passes byte for byte, either way', async (t) => {
  const r = rig();
  r.server('220-Welcome\r\n220-  two lines\r\n220 (vsFTPd 3.0.3)\r\n');
  r.client('USER anonymous\r\n');
  r.client('pass \xe9t\xe9\n'); // lowercase, latin-1, a bare LF
  r.client('RETR /pub/file with spaces\r\n');
  r.client('\xff\xf4\xff\xf2ABOR\r\n'); // telnet IP and DM before ABOR
  r.server('331 Please specify the password.\r\n230 Login successful.\r\n150 Opening BINARY mode.\r\n226 Transfer complete.\r\n225 No transfer to ABOR.\r\n');
  t.same(r.toServer, ['USER anonymous\r\n', 'pass \xe9t\xe9\n', 'RETR /pub/file with spaces\r\n', '\xff\xf4\xff\xf2ABOR\r\n']);
  t.same(r.toClient, [
    '220-Welcome\r\n',
    '220-  two lines\r\n',
    '220 (vsFTPd 3.0.3)\r\n',
    '331 Please specify the password.\r\n',
    '230 Login successful.\r\n',
    '150 Opening BINARY mode.\r\n',
    '226 Transfer complete.\r\n',
    '225 No transfer to ABOR.\r\n',
  ]);
  t.equal(r.control.outstanding, 0, 'every command answered: nothing waits');
});

for (const command of ['EPSV', 'EPSV 2', 'epsv 2']) {
  t.test(`${command} becomes PASV; the server's 227 becomes a 229 with the gateway's port`, async (t) => {
    const r = loggedIn({ passivePort: 50123 });
    r.client(`${command}\r\n`);
    t.same(r.toServer, ['PASV\r\n']);
    r.server('227 Entering Passive Mode (198,18,0,2,117,49).\r\n');
    t.same(r.passive, [{ ipv4: BACKEND >>> 0, port: 117 * 256 + 49 }], "the server's data address, as the 227 gave it");
    t.same(r.toClient, ['229 Entering Extended Passive Mode (|||50123|)\r\n']);
  });
}

t.test('PASV and LPSV are translated too: 227 with the gateway port, 228 with the dialled address', async (t) => {
  const r = loggedIn({ passivePort: 50000 });
  r.client('PASV\r\nLPSV\r\n');
  t.same(r.toServer, ['PASV\r\n', 'PASV\r\n']);
  r.server('227 Entering Passive Mode (198,18,0,2,4,1)\r\n227 Entering Passive Mode (198,18,0,2,4,2)\r\n');
  t.same(r.toClient, [
    '227 Entering Passive Mode (198,18,0,2,195,80).\r\n',
    '228 Entering Long Passive Mode (6,16,0,100,255,155,0,1,0,0,0,0,0,0,198,18,0,2,2,195,80)\r\n',
  ]);
});

t.test('a multi-line 227 is read whole and answered with one 229', async (t) => {
  const r = loggedIn({ passivePort: 50001 });
  r.client('EPSV\r\n');
  r.server('227-Entering Passive Mode\r\n');
  t.same(r.toClient, [], 'held until its last line');
  r.server(' here it is: 198,18,0,2,200,10\r\n227 OK\r\n');
  t.same(r.passive, [{ ipv4: BACKEND >>> 0, port: 200 * 256 + 10 }]);
  t.same(r.toClient, ['229 Entering Extended Passive Mode (|||50001|)\r\n']);
});

t.test('a 227 naming another host is an FTP bounce: 425, and nothing listens or is dialled', async (t) => {
  for (const reply of ['227 Entering Passive Mode (198,18,0,3,117,48).\r\n', '227 =203,0,113,9,0,21\r\n']) {
    const r = loggedIn();
    r.client('EPSV\r\n');
    r.server(reply);
    t.same(r.passive, [], reply.trim());
    t.match(r.toClient, [/^425 /]);
    t.same(r.notes, ['passive-mode address refused']);
  }
});

t.test("the server's refusal of PASV reaches the client as it is", async (t) => {
  const r = loggedIn();
  r.client('EPSV\r\n');
  r.server('550 Permission denied.\r\n');
  t.same(r.toClient, ['550 Permission denied.\r\n']);
  t.same(r.passive, []);
});

t.test('a 227 without an address passes on untranslated', async (t) => {
  const r = loggedIn();
  r.client('EPSV\r\n');
  r.server('227 Passive mode, somewhere.\r\n');
  t.same(r.toClient, ['227 Passive mode, somewhere.\r\n']);
});

t.test('no listener: the client gets 425 with the reason', async (t) => {
  const r = loggedIn({ passivePort: 'no port to listen on (EMFILE)' });
  r.client('EPSV\r\n');
  r.server('227 Entering Passive Mode (198,18,0,2,117,48).\r\n');
  t.same(r.toClient, ["425 Can't open data connection: no port to listen on (EMFILE).\r\n"]);
});

t.test('EPSV for another protocol, EPSV ALL, and what EPSV ALL refuses afterwards', async (t) => {
  const r = loggedIn();
  r.client('EPSV 1\r\nEPSV 7\r\nEPSV x\r\nEPSV ALL\r\n');
  t.same(r.toServer, [], 'none of them reaches the server');
  t.same(r.toClient, [
    '522 Network protocol not supported, use (2).\r\n',
    '522 Network protocol not supported, use (2).\r\n',
    '501 Syntax error in EPSV parameters.\r\n',
    '200 EPSV ALL command successful.\r\n',
  ]);
  r.toClient.length = 0;
  r.client('PASV\r\nLPSV\r\nPORT 1,2,3,4,5,6\r\nEPRT |2|2001:db8:c6::2|4000|\r\nLPRT 6,16,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,2,1,1\r\nEPSV\r\n');
  t.equal(r.toClient.filter((l) => l.startsWith('503 ')).length, 5, 'PASV, LPSV, PORT, EPRT and LPRT refused');
  t.same(r.toServer, ['PASV\r\n'], 'EPSV still works');
});

t.test("EPRT for the client's own address becomes a PORT to the gateway's IPv4 listener", async (t) => {
  const r = loggedIn({ activePort: 40001 });
  r.client('EPRT |2|2001:db8:c6::2|45678|\r\n');
  t.same(r.active, [45678], "the listener is for the client's port");
  t.same(r.toServer, [`PORT 198,18,0,1,156,65\r\n`], '198.18.0.1 port 40001');
  r.server('200 PORT command successful. Consider using PASV.\r\n');
  t.same(r.toClient, ['200 PORT command successful. Consider using PASV.\r\n'], 'the answer passes as it is');
  t.same(r.cancelled, []);
});

t.test('the other delimiters RFC 2428 allows, and LPRT', async (t) => {
  const r = loggedIn({ activePort: 40002 });
  r.client('EPRT !2!2001:db8:c6:0::2!45679!\r\n');
  r.client('LPRT 6,16,32,1,13,184,0,198,0,0,0,0,0,0,0,0,0,2,2,178,112\r\n');
  t.same(r.active, [45679, 178 * 256 + 112]);
  t.equal(r.toServer.length, 2);
});

t.test('an active-mode listener goes when the server refuses the PORT', async (t) => {
  const r = loggedIn({ activePort: 40003 });
  r.client('EPRT |2|2001:db8:c6::2|45678|\r\n');
  r.server('500 Illegal PORT command.\r\n');
  t.same(r.cancelled, [40003]);
  t.same(r.toClient, ['500 Illegal PORT command.\r\n']);
});

t.test('EPRT or LPRT to a third party is refused, and nothing listens', async (t) => {
  const r = loggedIn();
  r.client('EPRT |2|2001:db8:c6::99|45678|\r\n');
  r.client('EPRT |2|64:ff9b:1::c612:2|21|\r\n');
  r.client('LPRT 6,16,32,1,13,184,0,198,0,0,0,0,0,0,0,0,0,3,2,178,112\r\n');
  t.same(r.active, []);
  t.same(r.toServer, []);
  t.same(r.toClient, Array(3).fill("501 The data connection can only go to this client's own address.\r\n"));
  t.equal(r.notes.length, 3);
});

t.test('EPRT for IPv4, PORT, and malformed arguments', async (t) => {
  const r = loggedIn();
  r.client('EPRT |1|198.18.0.9|45678|\r\nLPRT 4,4,198,18,0,9,2,1,1\r\nPORT 198,18,0,9,1,1\r\nEPRT |2|nonsense|1|\r\nEPRT |2|2001:db8:c6::2|0|\r\nEPRT\r\n');
  t.same(r.toServer, []);
  t.same(r.active, []);
  t.same(
    r.toClient.map((l) => l.slice(0, 3)),
    ['522', '521', '501', '501', '501', '501'],
  );
});

t.test("pipelined commands: the gateway's own replies wait their turn", async (t) => {
  const r = loggedIn();
  r.client('NOOP\r\nALGS STATUS64\r\nRETR f\r\nEPSV 1\r\n');
  t.same(r.toClient, [], 'the ALGS answer waits for the NOOP');
  r.server('200 NOOP ok.\r\n');
  t.same(r.toClient, ['200 NOOP ok.\r\n', '216 ENABLED\r\n']);
  r.server('150 Opening.\r\n');
  t.equal(r.toClient.length, 3, 'a 1xx reply is not the final one: the 522 still waits');
  r.server('226 Done.\r\n');
  t.same(r.toClient.slice(3), ['226 Done.\r\n', '522 Network protocol not supported, use (2).\r\n']);
  t.equal(r.control.outstanding, 0);
});

t.test('ALGS: status, disable (commands then pass untranslated) and enable', async (t) => {
  const r = loggedIn();
  r.client('ALGS STATUS64\r\nALGS DISABLE64\r\nALGS STATUS64\r\nALGS BOGUS\r\n');
  t.same(r.toClient, ['216 ENABLED\r\n', '216 DISABLED\r\n', '216 DISABLED\r\n', '501 ALGS takes STATUS64, ENABLE64 or DISABLE64.\r\n']);
  r.client('EPSV\r\nEPRT |2|2001:db8:c6::99|1|\r\n');
  t.same(r.toServer, ['EPSV\r\n', 'EPRT |2|2001:db8:c6::99|1|\r\n'], 'disabled, the gateway translates nothing');
  r.server('229 Entering Extended Passive Mode (|||30000|)\r\n500 Bad EPRT.\r\n');
  t.same(r.passive, []);
  r.client('ALGS ENABLE64\r\nEPSV\r\n');
  t.same(r.toServer.at(-1), 'PASV\r\n');
});

t.test('AUTH: lines wait for its answer; accepted, the session becomes opaque', async (t) => {
  const r = loggedIn();
  r.client('AUTH TLS\r\n');
  t.ok(r.control.holding, 'what the client sends next may be TLS: it waits');
  r.server('234 Proceed with negotiation.\r\n');
  t.equal(r.opaque, 1);
  t.same(r.toClient, ['234 Proceed with negotiation.\r\n']);
  const refused = loggedIn();
  refused.client('AUTH SSL\r\n');
  refused.server('530 Please login with USER and PASS.\r\n');
  t.equal(refused.opaque, 0);
  t.notOk(refused.control.holding, 'refused: commands go on');
});

t.test('a 227 reply that never ends is bounded', async (t) => {
  const r = loggedIn();
  r.client('EPSV\r\n');
  r.server('227-start\r\n');
  const line = `${'x'.repeat(1000)}\r\n`;
  t.throws(() => {
    for (let i = 0; i * line.length <= MAX_HELD_REPLY; i++) r.server(line);
  }, new ProtocolError('the server sent a 227 reply over 8 KiB'));
});

t.test('a reply nobody asked for, and a line that is no reply, pass on', async (t) => {
  const r = loggedIn();
  r.server('421 Timeout.\r\nnot a reply\r\n');
  t.same(r.toClient, ['421 Timeout.\r\n', 'not a reply\r\n']);
});
