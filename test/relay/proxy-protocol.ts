// The PROXY protocol header, byte for byte as haproxy's doc/proxy-protocol.txt lays it out.
import t from 'tap';
import { proxyHeader } from '../../src/relay/proxy-protocol.js';
import { v6 } from '../fixtures/addresses.js';

const endpoint = (text: string, port: number) => ({ address: v6(text), text, port });
const CLIENT = endpoint('2001:db8:c6::2', 40000);
const DIALLED = endpoint('64:ff9b:1::c612:2', 5999);

t.test('v1: one text line, TCP6, source then destination, ended by CRLF', async (t) => {
  const header = proxyHeader('v1', CLIENT, DIALLED);
  t.equal(header.toString('latin1'), 'PROXY TCP6 2001:db8:c6::2 64:ff9b:1::c612:2 40000 5999\r\n');
  // §2.1: at most 107 bytes, whatever the addresses (these two have nothing to compress).
  const longest = proxyHeader('v1', endpoint('2001:db8:1111:2222:3333:4444:5555:6666', 65535), endpoint('ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe', 65535));
  t.ok(longest.length <= 107, `the longest is ${longest.length} bytes`);
});

t.test('v2: signature, version and command, family, length, then the addresses and ports', async (t) => {
  const header = proxyHeader('v2', CLIENT, DIALLED);
  const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
  t.same(
    header,
    Buffer.concat([
      hex('0d0a 0d0a 000d 0a51 5549 540a'), // the signature
      hex('21'), // version 2, PROXY
      hex('21'), // AF_INET6, STREAM
      hex('0024'), // 36 bytes follow
      hex('2001 0db8 00c6 0000 0000 0000 0000 0002'), // source address
      hex('0064 ff9b 0001 0000 0000 0000 c612 0002'), // destination address
      hex('9c40'), // source port 40000
      hex('176f'), // destination port 5999
    ]),
  );
  t.equal(header.length, 16 + 36);
});
