// Random interleavings, checked against a model of what each side must see. Every connection
// gets a script for its client and for its server: chunks of random sizes written a random
// moment apart (the same turn of the loop, the next, a few ms later), and an ending: a FIN, a
// reset right after the last write (the reset that races the last bytes), or silence (then
// the relay's idle or half-closed timeout ends it). A thousand connections per data plane, 200
// at a time (a run is mostly silent sides waiting out their timeouts, which overlap). The model:
//   - what a side receives is a prefix of what the other side wrote;
//   - a side sees a clean end of the other's stream only if the other ended it with a FIN, and
//     then it has all of it: a stream is whole, or visibly reset, never cut short;
//   - a side whose peer reset, or went silent, sees a reset (unless it reset first itself);
//   - the relay's end is the one the scripts call for, and its byte counts are exact after a
//     FIN both ways, and never less than what was delivered.
// Peers are Node sockets: each end of stream is confirmed with the kernel (src/relay/end.ts),
// or a reset arriving with the last bytes would look like an end to the peer itself.
// FAITHD6_FUZZ_SEED=N repeats a run; FAITHD6_FUZZ_CONNECTIONS=N runs N per data plane.
import { once } from 'node:events';
import net from 'node:net';
import t from 'tap';
import { confirmEnd } from '../../src/relay/end.js';
import type { RelayResult } from '../../src/relay/relay.js';
import { connect, PLANES, relayTo, TIMEOUTS } from '../fixtures/relay-rig.js';
import { prng } from '../fixtures/prng.js';

const SEED = Number(process.env.FAITHD6_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));
const CONNECTIONS = Number(process.env.FAITHD6_FUZZ_CONNECTIONS ?? 1000);
const AT_ONCE = 200;
/**
 * How many times longer every bound of this test is (FAITHD6_TEST_TIME_SCALE): CI's sanitizer
 * run sets 3, where this process's own relay, clients and servers all run under
 * AddressSanitizer beside the race suite's daemons. At 1 there, on a 2-core AMD VM, 267 of
 * 1,000 connections (the tree before bulk buffers) and 434 (after) had a scripted FIN cut
 * short by the half-closed timeout; alone, none.
 */
const TIME_SCALE = Number(process.env.FAITHD6_TEST_TIME_SCALE ?? 1);
/**
 * Far longer than any script takes (five writes a few ms apart), also on a loaded machine or
 * under AddressSanitizer: a timeout must end only the silent sides, never a slow one. With
 * 400 and 250 ms, the sanitizer run saw scripted FINs cut short by the half-closed timeout.
 */
const IDLE = 2_000 * TIME_SCALE;
const HALF_CLOSED = 1_500 * TIME_SCALE;
/** Longer than any script plus the idle timeout: a connection not done by then hangs. */
const DEADLINE = 10_000 * TIME_SCALE;
const SIZES = [1, 7, 100, 1000, 1460, 16 * 1024, 64 * 1024 + 1, 200_000];

type Ending = 'fin' | 'reset' | 'silent';
interface SideScript {
  readonly chunks: readonly Buffer[];
  /** Before each chunk and before the ending: 0 the same turn, 1 the next (setImmediate), else ms. */
  readonly gaps: readonly number[];
  readonly ending: Ending;
}
interface Script {
  readonly client: SideScript;
  readonly server: SideScript;
}

t.comment(`interleave seed ${SEED} (repeat with FAITHD6_FUZZ_SEED=${SEED}), ${CONNECTIONS} connections per data plane`);

function scripts(seed: number, count: number): Script[] {
  const rand = prng(seed);
  const pick = <T>(items: readonly T[]): T => items[rand() % items.length] as T;
  const side = (): SideScript => {
    const n = rand() % 5;
    const chunks = Array.from({ length: n }, () => {
      const size = pick(SIZES);
      const chunk = Buffer.allocUnsafe(size);
      for (let i = 0; i + 4 <= size; i += 4) chunk.writeUInt32LE(rand(), i);
      for (let i = size - (size % 4); i < size; i++) chunk[i] = rand() & 255;
      return chunk;
    });
    const gaps = Array.from({ length: n + 1 }, () => pick([0, 0, 1, 1, 2, 3]));
    // Mostly FINs; resets and silences often enough to race everything else.
    const ending = pick<Ending>(['fin', 'fin', 'fin', 'fin', 'reset', 'reset', 'silent']);
    return { chunks, gaps, ending };
  };
  return Array.from({ length: count }, () => ({ client: side(), server: side() }));
}

/** What one side saw of the other's stream. */
interface Seen {
  data: Buffer[];
  /** The kernel confirmed a FIN. */
  fin: boolean;
  /** The socket failed (ECONNRESET, EPIPE). */
  error: string | null;
  closed: Promise<void>;
}

function watch(socket: net.Socket): Seen {
  const seen: Seen = { data: [], fin: false, error: null, closed: Promise.resolve() };
  socket.on('data', (chunk: Buffer) => seen.data.push(chunk));
  socket.on('end', () =>
    confirmEnd(socket, () => {
      seen.fin = true;
    }),
  );
  socket.on('error', (err: NodeJS.ErrnoException) => {
    seen.error ??= err.code ?? err.message;
  });
  seen.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  return seen;
}

function pause(gap: number): Promise<void> {
  if (gap === 0) return Promise.resolve();
  if (gap === 1) return new Promise((resolve) => setImmediate(resolve));
  return new Promise((resolve) => setTimeout(resolve, gap - 1));
}

/** Plays one side's script on `socket`; `first` goes before its chunks (the client's id). */
async function play(socket: net.Socket, script: SideScript, first?: Buffer): Promise<void> {
  if (first !== undefined) socket.write(first);
  for (let i = 0; i < script.chunks.length; i++) {
    await pause(script.gaps[i] ?? 0);
    if (socket.destroyed) return;
    socket.write(script.chunks[i] as Buffer);
  }
  await pause(script.gaps[script.chunks.length] ?? 0);
  if (socket.destroyed) return;
  if (script.ending === 'fin') socket.end();
  // Right after the last write: the reset races the last bytes out.
  else if (script.ending === 'reset') socket.resetAndDestroy();
}

/** The relay's end the scripts call for (either reset, when both sides reset). */
function expectedEnds(s: Script): readonly string[] {
  const ends: string[] = [];
  if (s.client.ending === 'reset') ends.push('reset by client');
  if (s.server.ending === 'reset') ends.push('reset by server');
  if (ends.length > 0) return ends;
  const fins = [s.client.ending, s.server.ending].filter((e) => e === 'fin').length;
  return [fins === 2 ? 'fin' : fins === 1 ? 'half-closed timeout' : 'idle timeout'];
}

/** Whether `got` is a prefix of `sent`. */
function prefixOf(got: Buffer, sent: Buffer): boolean {
  return got.length <= sent.length && sent.subarray(0, got.length).equals(got);
}

/** What was wrong with one connection, judged by the model; none when it behaved. */
function judge(s: Script, id: Buffer, client: Seen, server: Seen, result: RelayResult | undefined): string[] {
  const wrong: string[] = [];
  const up = Buffer.concat([id, ...s.client.chunks]);
  const down = Buffer.concat(s.server.chunks);
  const atServer = Buffer.concat(server.data);
  const atClient = Buffer.concat(client.data);
  // Each direction: the receiver, what the sender wrote, how the sender ended, whether the receiver reset first.
  for (const [name, got, seen, sent, sender, receiver] of [
    ['up', atServer, server, up, s.client.ending, s.server.ending],
    ['down', atClient, client, down, s.server.ending, s.client.ending],
  ] as const) {
    if (!prefixOf(got, sent)) wrong.push(`${name}: received ${got.length} bytes that are not a prefix of the ${sent.length} sent`);
    if (seen.fin && sender !== 'fin') wrong.push(`${name}: a clean end, but the sender ended with ${sender === 'reset' ? 'a reset' : 'silence'}`);
    if (seen.fin && got.length !== sent.length) wrong.push(`${name}: a clean end after ${got.length} of ${sent.length} bytes: cut short`);
    if (sender === 'fin' && receiver !== 'reset' && s.client.ending !== 'reset' && s.server.ending !== 'reset' && !seen.fin)
      wrong.push(`${name}: the sender's FIN never arrived (${got.length} of ${sent.length} bytes, ${seen.error ?? 'no error'})`);
    if (sender !== 'fin' && receiver !== 'reset' && seen.error === null) wrong.push(`${name}: the sender ended with ${sender}, the receiver saw no reset`);
  }
  if (result === undefined) return [...wrong, 'the relay never reported its end'];
  const ends = expectedEnds(s);
  if (!ends.includes(result.end)) wrong.push(`relay end ${result.end}, expected ${ends.join(' or ')}`);
  if (result.end === 'fin' && (result.up !== up.length || result.down !== down.length))
    wrong.push(`relay counted ${result.up} up and ${result.down} down after a FIN both ways, not ${up.length} and ${down.length}`);
  if (result.up > up.length || result.down > down.length)
    wrong.push(`relay counted more than was sent: ${result.up}/${up.length} up, ${result.down}/${down.length} down`);
  if (result.up < atServer.length || result.down < atClient.length)
    wrong.push(`relay counted less than it delivered: ${result.up} < ${atServer.length} or ${result.down} < ${atClient.length}`);
  return wrong;
}

for (const plane of PLANES) {
  t.test(`${plane}: ${CONNECTIONS} random interleavings of writes, FINs, resets and timeouts`, async (t) => {
    const all = scripts(SEED, CONNECTIONS);
    const servers = new Map<number, { socket: net.Socket; seen: Seen }>();
    const arrived = new Map<number, () => void>();
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      const seen = watch(socket);
      // The client's first 4 bytes say which script this connection plays.
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        if (head.length < 4) return;
        socket.off('data', onData);
        const index = head.readUInt32LE(0);
        servers.set(index, { socket, seen });
        arrived.get(index)?.();
        void play(socket, (all[index] as Script).server);
      };
      socket.on('data', onData);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const rig = await relayTo(t, (server.address() as net.AddressInfo).port, { timeouts: { ...TIMEOUTS, idle: IDLE, halfClosed: HALF_CLOSED }, plane });

    const failures: string[] = [];
    const tally: Record<string, number> = {};
    let orphans = 0;
    const one = async (index: number): Promise<void> => {
      const script = all[index] as Script;
      const id = Buffer.alloc(4);
      id.writeUInt32LE(index);
      const socket = connect(rig.port);
      const client = watch(socket);
      await once(socket, 'connect').catch(() => undefined);
      const clientPort = socket.localPort ?? 0;
      const result = rig.of(clientPort);
      void play(socket, script.client, id);
      // The server side exists once the id arrived (a client that resets at once may never send it).
      const serverUp = new Promise<void>((resolve) => (servers.has(index) ? resolve() : arrived.set(index, resolve)));
      const timer = new Promise<'hung'>((resolve) => setTimeout(resolve, DEADLINE, 'hung').unref());
      // A client that reset before the JavaScript plane accepted it leaves a result without its
      // port (the socket has no peer address any more): for a client that reset and closed, such
      // a result stands for its own.
      let closedNow = false;
      void client.closed.then(() => (closedNow = true));
      let orphaned = false;
      let settled = false;
      const orphan = async (): Promise<RelayResult | 'hung'> => {
        if (script.client.ending !== 'reset') return timer;
        for (const until = Date.now() + DEADLINE; !settled && Date.now() < until; await new Promise((resolve) => setTimeout(resolve, 20))) {
          const found = closedNow ? rig.orphan() : undefined;
          if (found !== undefined) {
            orphaned = true;
            return found;
          }
        }
        return 'hung';
      };
      const ended = await Promise.race([result, orphan(), timer]);
      settled = true;
      const outcome = ended === 'hung' ? undefined : ended;
      // A client that reset at once may have gone before its id reached the server: a short wait, not the deadline.
      const grace = new Promise<void>((resolve) => setTimeout(resolve, 300).unref());
      await Promise.race([Promise.all([client.closed, Promise.race([serverUp, grace]).then(() => servers.get(index)?.seen.closed)]), timer]);
      arrived.delete(index);
      const far = servers.get(index);
      servers.delete(index);
      const serverSeen = far?.seen ?? { data: [], fin: false, error: 'never connected', closed: Promise.resolve() };
      const wrong = orphaned
        ? script.client.ending === 'reset' && outcome?.end === 'reset by client'
          ? []
          : [`a result without a client port (${outcome?.end ?? '?'}) for a client that ended with ${script.client.ending}`]
        : judge(script, id, client, serverSeen, outcome);
      if (orphaned) orphans += 1;
      tally[outcome?.end ?? 'hung'] = (tally[outcome?.end ?? 'hung'] ?? 0) + 1;
      if (wrong.length > 0) failures.push(`#${index} client ${script.client.ending}, server ${script.server.ending}: ${wrong.join('; ')}`);
      socket.destroy();
      far?.socket.destroy();
    };
    let next = 0;
    await Promise.all(
      Array.from({ length: AT_ONCE }, async () => {
        while (next < CONNECTIONS) await one(next++);
      }),
    );
    t.comment(
      `${plane}: ${failures.length} failures in ${CONNECTIONS} connections (seed ${SEED}); ends ${JSON.stringify(tally)}; ${orphans} reset before the accept (no client port)`,
    );
    for (const failure of failures.slice(0, 10)) t.comment(failure);
    t.equal(failures.length, 0, `every connection as the model says (${failures.length} not)`);
  });
}
