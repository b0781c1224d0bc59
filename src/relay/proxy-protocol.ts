/**
 * The PROXY protocol header (haproxy's doc/proxy-protocol.txt) that tells a backend who the
 * client really is: the IPv6 client's address and port, and the translated address and port
 * it dialled. Sent once, before any client byte, to backends whose service asks for it.
 */

/** How a service speaks to its backend: no header, version 1 (a text line) or 2 (binary). */
export type ProxyProtocol = 'none' | 'v1' | 'v2';

/** One end of the client's connection: an IPv6 address as 128 bits and as text, and a port. */
export interface Endpoint6 {
  readonly address: bigint;
  /** The address in RFC 5952's canonical form, as the kernel's inet_ntop gives it (node:net's remoteAddress). */
  readonly text: string;
  readonly port: number;
}

/** The 12 bytes every version 2 header starts with (§2.2). */
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Version 2, command PROXY (a relayed connection, not a health check). */
const V2_PROXY = 0x21;
/** AF_INET6 over STREAM. */
const V2_TCP6 = 0x21;
/** Two IPv6 addresses and two ports. */
const V2_TCP6_LENGTH = 16 + 16 + 2 + 2;

/** The header for a connection from `client` to `dialled`. */
export function proxyHeader(version: Exclude<ProxyProtocol, 'none'>, client: Endpoint6, dialled: Endpoint6): Buffer {
  switch (version) {
    case 'v1':
      // §2.1: "PROXY TCP6 src dst sport dport\r\n". The addresses in RFC 5952's canonical form:
      // readers such as nginx pass the text on as it came, into logs and variables.
      return Buffer.from(`PROXY TCP6 ${client.text} ${dialled.text} ${client.port} ${dialled.port}\r\n`, 'latin1');
    case 'v2': {
      const header = Buffer.alloc(V2_SIGNATURE.length + 4 + V2_TCP6_LENGTH);
      V2_SIGNATURE.copy(header, 0);
      let at = V2_SIGNATURE.length;
      header[at++] = V2_PROXY;
      header[at++] = V2_TCP6;
      at = header.writeUInt16BE(V2_TCP6_LENGTH, at);
      header.writeBigUInt64BE(client.address >> 64n, at);
      header.writeBigUInt64BE(client.address & 0xffff_ffff_ffff_ffffn, at + 8);
      header.writeBigUInt64BE(dialled.address >> 64n, at + 16);
      header.writeBigUInt64BE(dialled.address & 0xffff_ffff_ffff_ffffn, at + 24);
      header.writeUInt16BE(client.port, at + 32);
      header.writeUInt16BE(dialled.port, at + 34);
      return header;
    }
  }
}
