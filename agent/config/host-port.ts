// host:port, shared by the config schema and the sections defined beside their modules
// (runtime/metrics.ts), which must not import config/schema.ts (schema.ts imports them).

/** host:port, host a DNS name, an IPv4 address or a bracketed IPv6 address; port 1-65535. */
export function isHostPort(v: string): boolean {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):([0-9]{1,5})$/.exec(v);
  if (!m) return false;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535;
}
