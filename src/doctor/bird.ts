/** Check: BIRD answers on the configured socket, with a static protocol holding the prefixes. */
import { protocolRoutes, showProtocol } from '../announce/bird.js';
import type { Config } from '../config/types.js';
import type { Check } from './check.js';

/** One check, when the config announces through BIRD; nothing otherwise. */
export async function birdChecks(config: Config): Promise<Check[]> {
  const { birdSocket, protocol } = config.announce;
  if (birdSocket === null) return [];
  const title = `BIRD protocol ${protocol} on ${birdSocket}`;
  const example = `protocol static ${protocol} { disabled yes; ipv6; ${config.prefixes.map((p) => `route ${p} blackhole;`).join(' ')} }`;
  let found;
  try {
    found = await showProtocol(birdSocket, protocol);
  } catch (err) {
    return [
      {
        ok: false,
        title,
        detail: `BIRD does not answer: ${(err as Error).message}`,
        fix: "start BIRD with this control socket (bird -s SOCKET), or correct announce.birdSocket; faithd6's user must be allowed to use the socket",
      },
    ];
  }
  if (found === undefined) {
    return [
      {
        ok: false,
        title,
        detail: `BIRD has no protocol ${protocol}`,
        fix: `add it to BIRD's config and export it to BGP (README, "More than one host"): ${example}`,
      },
    ];
  }
  if (found.proto !== 'Static') {
    return [
      { ok: false, title, detail: `${protocol} is a ${found.proto} protocol, not a static one`, fix: `give faithd6 a static protocol of its own: ${example}` },
    ];
  }
  if (found.state !== 'up') {
    return [
      {
        ok: true,
        title,
        detail: `a static protocol, ${found.state} now`,
        notes: ['faithd6 enables it once every listener accepts; its routes can be checked while it is up (faithd6 doctor again then)'],
      },
    ];
  }
  const routes = await protocolRoutes(birdSocket, protocol);
  const want = [...config.prefixes].sort();
  const have = [...routes].sort();
  if (want.join(' ') !== have.join(' ')) {
    return [
      {
        ok: false,
        title,
        detail: `its routes are ${have.join(', ') || 'none'}; the prefixes are ${want.join(', ')}`,
        fix: `make the protocol's routes the prefixes, and nothing else: ${example}`,
      },
    ];
  }
  return [{ ok: true, title, detail: `a static protocol, up, announcing ${have.join(', ')}` }];
}
