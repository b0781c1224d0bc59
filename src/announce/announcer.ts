import type { Logger } from '../log.js';
import { setProtocol } from './bird.js';

// Whether this host announces the translation prefixes, carried out by enabling or disabling
// one BIRD protocol (a `static` one exported to BGP; README "More than one host"). The
// supervisor says what it wants and why; the announcer tells BIRD, and tells it again every
// few seconds, so that a BIRD that restarted (with the protocol `disabled yes` in its config)
// is brought back to the right state. A BIRD that cannot be reached is logged and shown in
// `status`; it never stops the translator.

/** How often the wanted state is told to BIRD again. */
export const REASSERT_INTERVAL = 3_000;

export interface AnnounceTarget {
  readonly socket: string;
  readonly protocol: string;
}

/** What `faithd6 status` shows of the announcement. */
export interface AnnounceStatus {
  readonly socket: string;
  readonly protocol: string;
  /** Whether BIRD was last told to announce, and did (false while BIRD cannot be reached). */
  readonly announced: boolean;
  /** Why the supervisor wants it this way ("every listener accepts", "port 5999 failed", ...). */
  readonly reason: string;
  /** Why BIRD's state may not be what is wanted, when it answered with an error or not at all. */
  readonly error: string | null;
}

export class Announcer {
  private readonly target: AnnounceTarget;
  private readonly log: Logger;
  private wanted = false;
  private reason = 'not ready yet';
  private announced = false;
  private error: string | null = null;
  private timer: NodeJS.Timeout | undefined;
  /** The command BIRD is being sent now: the next waits for it. */
  private inFlight: Promise<void> = Promise.resolve();

  /** Called after each command BIRD carried out: BIRD is reachable now. */
  private readonly reachable: () => void;

  constructor(target: AnnounceTarget, log: Logger, reachable: () => void = () => {}) {
    this.target = target;
    this.log = log;
    this.reachable = reachable;
  }

  /** Says what is wanted, and why; resolves once BIRD has been told (or could not be). */
  want(announce: boolean, reason: string): Promise<void> {
    const changed = announce !== this.wanted || reason !== this.reason;
    this.wanted = announce;
    this.reason = reason;
    if (changed) this.log.info({ announce, reason, protocol: this.target.protocol }, announce ? 'announcing' : 'withdrawing');
    this.timer ??= setInterval(() => void this.assert(), REASSERT_INTERVAL).unref();
    return this.assert();
  }

  /** Withdraws and stops re-asserting (the supervisor is going away). */
  async close(reason: string): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    this.wanted = false;
    this.reason = reason;
    this.log.info({ reason, protocol: this.target.protocol }, 'withdrawing');
    await this.assert();
  }

  status(): AnnounceStatus {
    return { ...this.target, announced: this.announced, reason: this.reason, error: this.error };
  }

  /** Tells BIRD the wanted state, one command at a time. */
  private assert(): Promise<void> {
    this.inFlight = this.inFlight.then(async () => {
      const wanted = this.wanted;
      try {
        const changed = await setProtocol(this.target.socket, this.target.protocol, wanted);
        this.announced = wanted;
        if (this.error !== null) this.log.info({ protocol: this.target.protocol }, 'BIRD answers again');
        // A change when none was asked for means BIRD lost the state: it restarted.
        if (changed) this.log.info({ protocol: this.target.protocol }, wanted ? 'BIRD protocol enabled' : 'BIRD protocol disabled');
        this.error = null;
        this.reachable();
      } catch (err) {
        const message = (err as Error).message;
        this.announced = false;
        if (message !== this.error) this.log.error({ err: message, protocol: this.target.protocol }, 'cannot tell BIRD; the translator goes on serving');
        this.error = message;
      }
    });
    return this.inFlight;
  }
}
