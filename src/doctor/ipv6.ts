/** Check: IPv6 is enabled, on the kernel command line and by sysctl. */
import { ipv6DisabledReason } from '../system/route.js';
import { type Check } from './check.js';

export async function ipv6Check(): Promise<Check> {
  const reason = await ipv6DisabledReason();
  if (reason === undefined) return { ok: true, title: 'IPv6', detail: 'enabled' };
  const fix = reason.includes('kernel')
    ? 'remove ipv6.disable=1 from the kernel command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub) and reboot'
    : 'sysctl -w net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.lo.disable_ipv6=0, and remove the setting from /etc/sysctl.conf and /etc/sysctl.d/ so that it stays so';
  return { ok: false, title: 'IPv6', detail: reason, fix };
}
