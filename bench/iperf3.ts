// iperf3 through every system, as operators measure a relay with their own tools, next to the C
// generator's figures: after the rounds, iperf3's server takes the C server's place at
// 198.18.0.1:5000 (the backend every relay forwards to), and its client runs through each
// system in turn, one stream and then N streams, client→server, for a few seconds each.
// suite.ts runs it and keeps its figures with the others'.
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { Child } from './proc.js';
import { SERVER4, SERVER_PORT } from './systems.js';

export interface Iperf3Run {
  readonly streams: number;
  /** What the server received, per second of the test. */
  readonly gbps: number;
  /** TCP retransmissions the client's kernel counted (null where iperf3 does not say). */
  readonly retransmits: number | null;
}

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

/** One iperf3 client run through `host`:`port`, tried again while the server is still busy with the last. */
export async function iperf3(host: string, port: number, streams: number, seconds: number): Promise<Iperf3Run> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await once(host, port, streams, seconds);
    } catch (err) {
      if (attempt >= ATTEMPTS || !AGAIN.test((err as Error).message)) throw err;
      await sleep(300 * attempt);
    }
  }
}

/** Runs `what` with iperf3's server in the place of `server` (the C server), which is stopped first for good. */
export async function withIperf3Server<T>(server: Child, what: () => Promise<T>): Promise<T> {
  await server.stop();
  const iperf = new Child('iperf3 server', 'iperf3', ['-s', '-B', SERVER4, '-p', String(SERVER_PORT)]);
  try {
    return await what();
  } finally {
    await iperf.stop();
  }
}
