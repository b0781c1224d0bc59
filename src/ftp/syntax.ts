// The FTP control connection's syntax, as far as the gateway needs it: commands (RFC 959 §5.3),
// replies (§4.2), the data-port arguments of PORT and 227 (RFC 959), EPRT and 229 (RFC 2428),
// LPRT and 228 (RFC 1639). Pure functions over bytes and text: no socket, no state.

import { parseIPv6 } from '../net/address.js';

/** A command line: its verb in capitals and its argument, without the line end. */
export interface Command {
  readonly verb: string;
  readonly arg: string;
}

/** Telnet's "interrupt process" and "data mark" (RFC 854), which some clients send before ABOR. */
const IAC = 0xff;

/** The line's text without its line end (CRLF, or a bare LF some clients send). */
export function lineText(line: Uint8Array): string {
  let end = line.length;
  if (end > 0 && line[end - 1] === 0x0a) end -= 1;
  if (end > 0 && line[end - 1] === 0x0d) end -= 1;
  return Buffer.from(line.buffer, line.byteOffset, end).toString('latin1');
}

/**
 * The verb and argument of a command line. Telnet commands in front of the verb (IAC IP IAC DM
 * before an ABOR) are skipped; the verb is case-insensitive (RFC 959 §5.3.1).
 */
export function parseCommand(line: Uint8Array): Command {
  let start = 0;
  while (start + 1 < line.length && line[start] === IAC) start += 2;
  const text = lineText(line.subarray(start));
  const space = text.indexOf(' ');
  const verb = (space < 0 ? text : text.slice(0, space)).toUpperCase();
  return { verb, arg: space < 0 ? '' : text.slice(space + 1).trim() };
}

/** A reply line: its code and whether it ends the reply; undefined for a line inside a multi-line reply. */
export interface ReplyLine {
  readonly code: number;
  /** `ddd text` (or `ddd` alone) ends a reply; `ddd-text` starts a multi-line one. */
  readonly last: boolean;
}

/** Reads a line's reply code (RFC 959 §4.2): three digits, then a space, a hyphen or the line end. */
export function parseReplyLine(line: Uint8Array): ReplyLine | undefined {
  if (line.length < 3) return undefined;
  for (let i = 0; i < 3; i++) {
    const c = line[i] as number;
    if (c < 0x30 || c > 0x39) return undefined;
  }
  const next = line[3];
  if (next !== undefined && next !== 0x20 && next !== 0x2d && next !== 0x0d && next !== 0x0a) return undefined;
  const code = (line[0]! - 0x30) * 100 + (line[1]! - 0x30) * 10 + (line[2]! - 0x30);
  return { code, last: next !== 0x2d };
}

/** An IPv4 address (as a 32-bit number) and a port. */
export interface HostPort4 {
  readonly ipv4: number;
  readonly port: number;
}

function byte(text: string): number | undefined {
  const n = Number(text);
  return /^\d{1,3}$/.test(text) && n <= 255 ? n : undefined;
}

/** Six comma-separated numbers h1,h2,h3,h4,p1,p2 (PORT's argument), or undefined. */
function sixNumbers(text: string): HostPort4 | undefined {
  const parts = text.split(',').map((p) => byte(p.trim()));
  if (parts.length !== 6 || parts.some((p) => p === undefined)) return undefined;
  const [h1, h2, h3, h4, p1, p2] = parts as [number, number, number, number, number, number];
  const port = p1 * 256 + p2;
  if (port === 0) return undefined;
  return { ipv4: ((h1 << 24) | (h2 << 16) | (h3 << 8) | h4) >>> 0, port };
}

/**
 * The address and port of a 227 reply. RFC 959 does not fix where they stand in the text, so,
 * as RFC 1123 §4.1.2.6 advises, the first run of six comma-separated numbers counts.
 */
export function parse227(text: string): HostPort4 | undefined {
  const m = /(\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3}\s*,\s*\d{1,3})/.exec(text);
  return m === null ? undefined : sixNumbers(m[1] as string);
}

/** An EPRT or LPRT argument: the network protocol and, for IPv6, the address and port. */
export type ActiveTarget = { readonly ok: true; readonly address: bigint; readonly port: number } | { readonly ok: false; readonly why: 'syntax' | 'protocol' };

/** EPRT's argument (RFC 2428 §2): `<d>proto<d>address<d>port<d>`, any printable delimiter. */
export function parseEprt(arg: string): ActiveTarget {
  const d = arg[0];
  if (d === undefined || d.charCodeAt(0) < 33 || d.charCodeAt(0) > 126) return { ok: false, why: 'syntax' };
  const fields = arg.split(d);
  if (fields.length !== 5 || fields[0] !== '' || fields[4] !== '') return { ok: false, why: 'syntax' };
  const [, proto, addr, portText] = fields as [string, string, string, string, string];
  if (proto === '1') return { ok: false, why: 'protocol' };
  if (proto !== '2') return { ok: false, why: /^\d+$/.test(proto) ? 'protocol' : 'syntax' };
  const address = parseIPv6(addr);
  const port = Number(portText);
  if (address === undefined || !/^\d{1,5}$/.test(portText) || port < 1 || port > 65535) return { ok: false, why: 'syntax' };
  return { ok: true, address, port };
}

/** LPRT's argument (RFC 1639 §2): `af,hal,h1,…,hN,pal,p1,p2`; only af 6 (IPv6, 16 bytes) is an IPv6 client's. */
export function parseLprt(arg: string): ActiveTarget {
  const parts = arg.split(',').map((p) => byte(p.trim()));
  if (parts.length < 3 || parts.some((p) => p === undefined)) return { ok: false, why: 'syntax' };
  const n = parts as number[];
  if (n[0] !== 6) return { ok: false, why: n[0] === 4 ? 'protocol' : 'syntax' };
  if (n[1] !== 16 || n.length !== 2 + 16 + 3 || n[18] !== 2) return { ok: false, why: 'syntax' };
  let address = 0n;
  for (let i = 2; i < 18; i++) address = (address << 8n) | BigInt(n[i] as number);
  const port = (n[19] as number) * 256 + (n[20] as number);
  if (port === 0) return { ok: false, why: 'syntax' };
  return { ok: true, address, port };
}

function ipv4Bytes(ipv4: number): number[] {
  return [ipv4 >>> 24, (ipv4 >>> 16) & 255, (ipv4 >>> 8) & 255, ipv4 & 255];
}

/** `h1,h2,h3,h4,p1,p2`, as PORT and 227 write an address and port. */
export function formatHostPort(ipv4: number, port: number): string {
  return [...ipv4Bytes(ipv4), port >> 8, port & 255].join(',');
}

/** The reply to an EPSV (RFC 2428 §3): the port alone; the client connects to the address it already uses. */
export function reply229(port: number): string {
  return `229 Entering Extended Passive Mode (|||${port}|)\r\n`;
}

/** The reply to a PASV: an IPv4 address and a port. */
export function reply227(ipv4: number, port: number): string {
  return `227 Entering Passive Mode (${formatHostPort(ipv4, port)}).\r\n`;
}

/** The reply to an LPSV (RFC 1639 §3), for an IPv6 address. */
export function reply228(address: bigint, port: number): string {
  const bytes: number[] = [];
  for (let shift = 120n; shift >= 0n; shift -= 8n) bytes.push(Number((address >> shift) & 255n));
  return `228 Entering Long Passive Mode (6,16,${bytes.join(',')},2,${port >> 8},${port & 255})\r\n`;
}

/** `PORT h1,…,p2` toward the server. */
export function portCommand(ipv4: number, port: number): string {
  return `PORT ${formatHostPort(ipv4, port)}\r\n`;
}
