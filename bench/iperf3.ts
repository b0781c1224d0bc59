// iperf3 through every system, as operators measure a relay with their own tools, next to the C
// generator's figures: after the rounds, iperf3's server takes the C server's place at
// 198.18.0.1:5000 (the backend every relay forwards to), and its client runs through each
// system in turn, one stream and then N streams, client→server, for a few seconds each.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './proc.js';
import { SERVER4, SERVER_PORT, type System } from './systems.js';

export interface Iperf3Run {
  readonly streams: number;
  /** What the server received, per second of the test. */
  readonly gbps: number;
  /** TCP retransmissions the client's kernel counted (null where iperf3 does not say). */
  readonly retransmits: number | null;
}

export type Iperf3Result = { readonly runs: readonly Iperf3Run[] } | { readonly error: string };

/** A client run that fails for one of these is tried again: the server is still closing the last test. */
const AGAIN = /server is busy|Connection refused|unable to connect|control socket has closed/i;
const ATTEMPTS = 5;

function once(host: string, port: number, streams: number, seconds: number): Promise<Iperf3Run> {
  return new Promise((resolve, reject) => {
    const args = ['-c', host, '-p', String(port), '-P', String(streams), '-t', String(seconds), '-J', '--connect-timeout', '3000'];
    const child = spawn('iperf3', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (out += text));
    child.stderr.resume();
    // iperf3 bounds its own test; this bounds a client that hangs on a relay that does not relay.
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 15) * 1000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let report: { error?: string; end?: { sum_received?: { bits_per_second?: number }; sum_sent?: { retransmits?: number } } };
      try {
        report = JSON.parse(out) as typeof report;
      } catch {
        reject(new Error(`iperf3 exited (${signal ?? code}) without a JSON report`));
        return;
      }
      const bps = report.end?.sum_received?.bits_per_second;
      if (report.error !== undefined || bps === undefined) {
        reject(new Error(`iperf3: ${report.error ?? 'no sum_received in its report'}`));
        return;
      }
      resolve({ streams, gbps: bps / 1e9, retransmits: report.end?.sum_sent?.retransmits ?? null });
    });
  });
}

async function run(host: string, port: number, streams: number, seconds: number): Promise<Iperf3Run> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await once(host, port, streams, seconds);
    } catch (err) {
      if (attempt >= ATTEMPTS || !AGAIN.test((err as Error).message)) throw err;
      await sleep(300 * attempt);
    }
  }
}

/**
 * Stops `server` (the C server), starts iperf3's in its place, runs the client through each of
 * `order` with 1 and `streams` streams, and stops iperf3's server again. The result per system.
 */
export async function iperf3Phase(
  order: readonly System[],
  server: Child,
  streams: number,
  seconds: number,
  say: (line: string) => void,
): Promise<Map<string, Iperf3Result>> {
  const results = new Map<string, Iperf3Result>();
  await server.stop();
  const iperf = new Child('iperf3 server', 'iperf3', ['-s', '-B', SERVER4, '-p', String(SERVER_PORT)]);
  try {
    for (const s of order) {
      const runs: Iperf3Run[] = [];
      try {
        for (const n of [1, streams]) {
          const r = await run(s.host, s.port, n, seconds);
          runs.push(r);
          say(
            `iperf3 ${`${n} stream${n === 1 ? '' : 's'} c→s`.padEnd(14)} ${s.name}: ${r.gbps.toFixed(2)} Gbit/s${r.retransmits === null ? '' : `, ${r.retransmits} retransmits`}`,
          );
        }
        results.set(s.name, { runs });
      } catch (err) {
        results.set(s.name, { error: (err as Error).message });
        say(`iperf3 through ${s.name}: ERROR ${(err as Error).message}`);
      }
    }
  } finally {
    await iperf.stop();
  }
  return results;
}
