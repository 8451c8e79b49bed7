// The `sites:` section of bollard.yaml (issue 18): MySQL replicas in another equipment room,
// fed asynchronously from whichever node is primary, never failover candidates. Keys and
// defaults: docs/config.md; what bollard does with them: docs/site.md.
import { z } from "zod";

const expect = (what: string) => ({ error: what });
const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) => z.object(shape, expect(`a mapping (${what})`)).strict();
const absPath = (what: string) => z.string(expect(`an absolute path (${what})`)).refine((v) => v.startsWith("/") && !v.includes("\0"));

export const SiteEntry = section(
  {
    name: z.string(expect("a name of a-z, 0-9 and -")).regex(/^[a-z][a-z0-9-]{0,30}$/),
    mysql: section(
      {
        host: z.string(expect("an IPv4 address")).regex(/^(\d{1,3}\.){3}\d{1,3}$/),
        port: z.number(expect("a port, 1-65535")).int().min(1).max(65535).default(3306),
        /** the account the agents (and `bollard site promote`) log in with; default: mysql.user */
        user: z.string().min(1).max(32).optional(),
        password_file: absPath("the remote's password for user; default: mysql.password_file").optional(),
      },
      "host, port, user, password_file",
    ),
    /** lag over either raises the site-lag alarm (major) */
    lag_alarm_s: z.number(expect("seconds")).int().min(1).max(86_400).default(30),
    lag_alarm_trx: z.number(expect("a count of transactions")).int().min(1).max(100_000_000).default(10_000),
    /** a new leader waits this long for a first read of the remote before it places or recovers
     *  MySQL: a remote promoted while this room was down must be seen first (docs/site.md) */
    contact_wait_ms: z.number(expect("milliseconds")).int().min(0).max(600_000).default(5000),
    /** the remote is read (and re-pointed when needed) this often */
    poll_ms: z.number(expect("milliseconds")).int().min(200).max(60_000).default(1000),
  },
  "name, mysql, lag_alarm_s, lag_alarm_trx, contact_wait_ms, poll_ms",
);

export const SitesSection = z.array(SiteEntry, expect("a list of remote sites")).max(4);
export type SiteFile = z.infer<typeof SiteEntry>;

export interface SiteConfig {
  name: string;
  host: string;
  port: number;
  user: string | null;
  passwordFile: string | null;
  lagAlarmS: number;
  lagAlarmTrx: number;
  contactWaitMs: number;
  pollMs: number;
}

export function toSites(f: SiteFile[] | undefined): SiteConfig[] {
  return (f ?? []).map((s) => ({
    name: s.name, host: s.mysql.host, port: s.mysql.port, user: s.mysql.user ?? null, passwordFile: s.mysql.password_file ?? null,
    lagAlarmS: s.lag_alarm_s, lagAlarmTrx: s.lag_alarm_trx, contactWaitMs: s.contact_wait_ms, pollMs: s.poll_ms,
  }));
}

/** Relations: sites need a mysql section (the remote replicates from its primary); names unique. */
export function checkSites(sites: SiteFile[] | undefined, hasMysql: boolean): string[] {
  if (!sites?.length) return [];
  const errs: string[] = [];
  if (!hasMysql) errs.push("sites: expected a mysql section (a remote site replicates the cluster's MySQL), got none");
  const names = sites.map((s) => s.name);
  for (const n of new Set(names.filter((x, i) => names.indexOf(x) !== i))) errs.push(`sites: expected unique names, got ${JSON.stringify(n)} more than once`);
  return errs;
}
