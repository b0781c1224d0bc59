/** Check: what the FTP gateway's active mode can do on this host. */
import type { Config } from '../config/types.js';
import { ipv6NonlocalBind } from '../system/proc.js';
import { plural, type Check } from './check.js';

/**
 * For FTP services: whether an active-mode (EPRT) data connection can come from the translated
 * address the client dialled. That takes net.ipv6.ip_nonlocal_bind=1, since the host has the
 * translated addresses by a local route only; without it the connection comes from the host's
 * own address, which clients that check the data connection's source refuse. Nothing when no
 * service is FTP.
 */
export function ftpChecks(config: Config): Check[] {
  const ports = config.services.filter((s) => s.protocol === 'ftp').map((s) => s.port);
  if (ports.length === 0) return [];
  const title = `FTP gateway (${plural(ports.length, 'port')}: ${ports.join(', ')})`;
  if (ipv6NonlocalBind()) {
    return [{ ok: true, title, detail: 'net.ipv6.ip_nonlocal_bind is 1: active-mode data connections come from the translated address the client dialled' }];
  }
  return [
    {
      ok: true,
      title,
      detail: 'passive mode (EPSV) needs nothing more of this host',
      notes: [
        "net.ipv6.ip_nonlocal_bind is 0: active-mode (EPRT) data connections come from this host's own IPv6 address, not from the translated one; " +
          'clients that check where a data connection comes from (lftp with ftp:verify-address) refuse them. ' +
          'sysctl -w net.ipv6.ip_nonlocal_bind=1 (persisted in /etc/sysctl.d/) lets faithd6 use the translated address',
      ],
    },
  ];
}
