// The systemd-notify package (1.0.0) ships no types: its one export, as notify.js defines it.
declare module 'systemd-notify' {
  import type { ChildProcess } from 'node:child_process';

  interface NotifyOptions {
    /** --ready: READY=1. */
    ready?: boolean;
    /** --pid=N: whom systemd attributes the message to (and MAINPID= with --ready). */
    pid?: number;
    /** --status=TEXT: STATUS=. */
    status?: string;
    /** --booted: only asks whether systemd runs the system. */
    booted?: boolean;
  }

  /** Spawns systemd-notify with these options; rejects with its stderr when it exits non-zero. */
  export default function notify(options?: NotifyOptions): Promise<ChildProcess>;
}
