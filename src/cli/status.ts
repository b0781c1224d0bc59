import { Command } from 'commander';
import { formatDuration } from '../config/duration.js';
import { loadConfig } from '../config/load.js';
import type { DaemonStatus } from '../control/protocol.js';
import type { PlaneChoice } from '../relay/native.js';
import type { WorkerStats } from '../worker/messages.js';
import { verb, type CliContext } from './context.js';
import { daemonStatus, runtimeDirectoryOf } from './daemon-control.js';

/** `faithd6 status`: running or not, and what it is doing, from the daemon itself. */
export function statusCommand(ctx: CliContext): Command {
  return verb(
    'status',
    'say whether the translator runs, and show its ports, workers, connections and counters',
    "config file (says where the daemon's control socket is)",
  )
    .option('--runtime-dir <dir>', "the daemon's runtime directory, instead of the config file's runtimeDirectory")
    .option('--json', 'print the status as JSON')
    .addHelpText(
      'after',
      `
Counters are since each worker started; bytes include open connections.
Exit status: 0 running, 3 not running (as LSB init scripts), 77 no permission.`,
    )
    .action(async (options: { config: string; runtimeDir?: string; json?: boolean }) => {
      const status = await daemonStatus(await runtimeDirectoryOf(options));
      const file = await checkFile(status.config);
      ctx.stdout.write(options.json ? `${JSON.stringify({ ...status, file }, null, 2)}\n` : formatStatus(status, file));
    });
}

/** Bytes for people: 1.5 MiB. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

function counters(s: WorkerStats): string {
  return (
    `${s.active} active, ${s.relayed} relayed, ${s.denied} denied, ${s.notTranslated} not translated, ` +
    `${s.limited} over limit, ${s.connectFailed} connect failures, ${formatBytes(s.up)} up, ${formatBytes(s.down)} down`
  );
}

/** Whether the daemon's config file, as it is on disk now, would be accepted by a reload. */
export interface FileCheck {
  readonly valid: boolean;
  readonly error?: string;
}

async function checkFile(file: string): Promise<FileCheck> {
  try {
    await loadConfig(file);
    return { valid: true };
  } catch (err) {
    return { valid: false, error: (err as Error).message };
  }
}

/** `native`, or `js` and why not native when that was configured. */
function planeText(plane: PlaneChoice): string {
  return plane.fallback === null ? plane.dataPlane : `${plane.dataPlane}, not native: ${plane.fallback}`;
}

/** The human form of a status. */
export function formatStatus(status: DaemonStatus, file: FileCheck): string {
  const lines = [
    `faithd6 is running: pid ${status.pid}, up ${formatDuration(status.uptime * 1000)}, version ${status.version}`,
    file.valid
      ? `config: ${status.config}`
      : `config: ${status.config} — the file is now INVALID, a reload would be refused (the daemon keeps its config):\n  ${file.error?.replaceAll('\n', '\n  ') ?? ''}`,
    `prefixes: ${status.prefixes.join(', ')}`,
    `data plane: ${planeText(status.dataPlane)}`,
  ];
  const reload = status.lastReload;
  if (reload === null) lines.push('last reload: none');
  else if (reload.ok) lines.push(`last reload: ${reload.at}, applied (${reload.changes.length === 0 ? 'no changes' : reload.changes.join('; ')})`);
  else lines.push(`last reload: ${reload.at}, REFUSED, the running config is unchanged: ${reload.error ?? ''}`);
  const a = status.announce;
  if (a === null) lines.push('announced: not configured (no announce.birdSocket)');
  else {
    lines.push(`announced: ${a.announced ? 'yes' : 'no'} (${a.reason}), BIRD protocol ${a.protocol} on ${a.socket}`);
    if (a.error !== null) lines.push(`  BIRD: ${a.error}`);
  }
  for (const port of status.ports) {
    const n = port.workers.length;
    const plane = port.dataPlane.dataPlane === status.dataPlane.dataPlane ? '' : ` (${planeText(port.dataPlane)})`;
    lines.push(`port ${port.port} -> backend port ${port.backendPort}, ${n} worker${n === 1 ? '' : 's'}${plane}: ${counters(port.totals)}`);
    for (const worker of port.workers) {
      const state = worker.pid === null ? 'restarting' : worker.answering ? `pid ${worker.pid}` : `pid ${worker.pid} NOT ANSWERING`;
      const detail = worker.stats === null ? '' : `, ${worker.stats.active} active, ${worker.stats.relayed} relayed`;
      lines.push(`  worker ${state}${detail}, ${worker.restarts} restart${worker.restarts === 1 ? '' : 's'}`);
    }
  }
  lines.push(`total: ${counters(status.totals)}`);
  const t = status.totals;
  const detail = (label: string, counts: Record<string, number>): void => {
    const parts = Object.entries(counts).map(([reason, n]) => `${reason} ${n}`);
    if (parts.length > 0) lines.push(`  ${label}: ${parts.join(', ')}`);
  };
  detail('ended', t.ends);
  detail('denied', t.deniedBy);
  detail('over limit', t.limitedBy);
  if (t.acceptErrors > 0) lines.push(`  accept failures: ${t.acceptErrors}`);
  return `${lines.join('\n')}\n`;
}
