// The data-path sections of bollard.yaml (issue 4): ha (nodes' addresses and fencing, the
// switches, the VIP, the timings), mysql, redis and portal. All optional: without `ha`, the
// agent runs the cluster core only. Keys and defaults: docs/config.md.
import { z } from "zod";

const expect = (what: string) => ({ error: what });
const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) => z.object(shape, expect(`a mapping (${what})`)).strict();
const absPath = (what: string) => z.string(expect(`an absolute path (${what})`)).refine((v) => v.startsWith("/") && !v.includes("\0"));
const ipv4 = () => z.string(expect("an IPv4 address")).regex(/^(\d{1,3}\.){3}\d{1,3}$/);
const port = (d: number) => z.number(expect("a port, 1-65535")).int().min(1).max(65535).default(d);
const ms = (d: number) => z.number(expect("a whole number of milliseconds > 0")).int().positive().max(3_600_000).default(d);
const name = () => z.string(expect("a name of a-z, 0-9 and -")).regex(/^[a-z][a-zA-Z0-9-]{0,30}$/);

const Bmc = section(
  {
    host: ipv4(),
    port: port(623),
    user: z.string(expect("a user name")).min(1).max(16),
    password_file: absPath("a 0600 file holding the BMC password"),
    cipher: z.number(expect("an IPMI cipher suite number")).int().min(0).max(17).default(17),
    timeout_s: z.number(expect("seconds")).int().min(1).max(30).default(1),
    retries: z.number(expect("a count")).int().min(0).max(5).default(1),
  },
  "host, port, user, password_file, cipher, timeout_s, retries",
);

const HaNode = section(
  {
    /** the node's data address: MySQL and Redis listen there, replicas and portals connect there */
    address: ipv4(),
    bmc: Bmc.optional(),
    /** its NICs' ports: switch name and ifDescr (or ifName), and the node's NIC cabled there (alarms name it) */
    ports: z.array(section({ switch: name(), port: z.string().min(1).max(64), nic: z.string(expect("a NIC name")).regex(/^[A-Za-z0-9_.-]{1,15}$/).optional() }, "switch, port, nic"), expect("a list of switch ports")).default([]),
  },
  "address, bmc, ports",
);

const Switch = section(
  {
    host: ipv4(),
    port: port(161),
    version: z.enum(["2c", "3"], expect('"2c" or "3"')).default("2c"),
    community: z.string().min(1).max(64).default("public"),
    write_community: z.string().min(1).max(64).optional(),
    v3: section(
      { user: z.string().min(1), auth_key: z.string().min(8), priv_key: z.string().min(8), auth_protocol: z.enum(["sha", "md5"]).default("sha"), priv_protocol: z.enum(["aes", "des"]).default("aes") },
      "user, auth_key, priv_key, auth_protocol, priv_protocol",
    ).optional(),
    timeout_ms: ms(1000),
  },
  "host, port, version, community, write_community, v3, timeout_ms",
);

export const HaSection = section(
  {
    nodes: z.record(name(), HaNode, expect("a mapping of node name to its address and fencing")),
    switches: z.record(name(), Switch, expect("a mapping of switch name to its SNMP agent")).default({}),
    vip: section({ address: z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, "address/prefix"), iface: z.string().min(1).max(15) }, "address, iface").optional(),
    anti_flap_ms: ms(600_000),
    step_timeout_ms: ms(15_000),
    fence_timeout_ms: ms(60_000),
    /** the watchdog timeout every node runs under (WatchdogSec): part of the self-fence deadline,
     *  and how long a silent node whose data path still answers is waited for before it is fenced */
    watchdog_ms: ms(5000),
    fence_margin_ms: ms(2000),
    /** a local MySQL, Redis or nginx that has not answered for this long is failed: killed and
     *  confirmed gone by its agent, failed over, started again (issue 22) */
    service_fail_ms: ms(2000),
    /** a service without a writable primary clients can reach for this long: a CRITICAL alarm */
    writes_down_alarm_ms: ms(5000),
  },
  "nodes, switches, vip, anti_flap_ms, step_timeout_ms, fence_timeout_ms, watchdog_ms, fence_margin_ms, service_fail_ms, writes_down_alarm_ms",
);

/** A command line as a list (no shell): what starts a local server again after it was fenced. */
const argv = (what: string) => z.array(z.string().min(1).max(4096), expect(`a command as a list of strings (${what})`)).min(1).max(32);

export const MysqlSection = section(
  {
    flavour: z.enum(["mariadb", "mysql8"], expect('"mariadb" or "mysql8"')).default("mariadb"),
    port: port(3306),
    socket: absPath("the local server's socket").optional(),
    user: z.string().min(1).max(32),
    password_file: absPath("the agent's MySQL password"),
    repl_user: z.string().min(1).max(32).default("repl"),
    repl_password_file: absPath("the replication password"),
    repl_host: z.string().min(1).max(60).default("%"),
    semi_sync_timeout_ms: ms(30_000),
    /** starts the server again after the agent fenced it (killed a hung or dead one); absent: the
     *  service manager's business (systemd's Restart=) */
    start_cmd: argv("e.g. [systemctl, start, mariadb]").optional(),
    /** data checks (primary against replicas, table checksums): this often, and after every change */
    verify_every_ms: ms(600_000),
    /** tables larger than this are left out of the data checks */
    verify_max_table_mb: z.number(expect("megabytes")).int().min(1).max(1_000_000).default(1024),
  },
  "flavour, port, socket, user, password_file, repl_user, repl_password_file, repl_host, semi_sync_timeout_ms, start_cmd, verify_every_ms, verify_max_table_mb",
);

export const RedisSection = section(
  {
    port: port(6379),
    password_file: absPath("the Redis password").optional(),
    min_replicas_max_lag_s: z.number().int().min(1).max(60).default(2),
    start_cmd: argv("e.g. [systemctl, start, redis-server]").optional(),
  },
  "port, password_file, min_replicas_max_lag_s, start_cmd",
);

const HttpService = section(
  {
    name: name(),
    listen: z.string().min(1).max(60),
    backends: z.array(z.string().min(3)).min(1),
    health: section({ path: z.string().startsWith("/").default("/"), interval_ms: ms(1000), rise: z.number().int().min(1).default(2), fall: z.number().int().min(1).default(3), timeout_ms: ms(500) }, "path, interval_ms, rise, fall, timeout_ms").prefault({}),
  },
  "name, listen, backends, health",
);

export const PortalSection = section(
  {
    prefix: absPath("nginx's prefix directory"),
    mysql_listen: z.string().min(1).max(60).default("3307"),
    redis_listen: z.string().min(1).max(60).default("6380"),
    services: z.array(HttpService).default([]),
    /** nginx answers GET /bollard-health here: the agent's check of its own portal, and of the
     *  portal through the VIP on the node holding it */
    health_listen: z.string().min(1).max(60).default("8098"),
  },
  "prefix, mysql_listen, redis_listen, services, health_listen",
);

export type HaFile = z.infer<typeof HaSection>;
export type MysqlFile = z.infer<typeof MysqlSection>;
export type RedisFile = z.infer<typeof RedisSection>;
export type PortalFile = z.infer<typeof PortalSection>;

export interface HaConfig {
  ha: HaFile;
  mysql: MysqlFile | null;
  redis: RedisFile | null;
  portal: PortalFile | null;
}

/** Relations: every member has an ha.nodes entry; every port names a known switch. */
export function checkHa(h: HaConfig, members: string[]): string[] {
  const errs: string[] = [];
  for (const m of members) if (!(m in h.ha.nodes)) errs.push(`ha.nodes: expected an entry for member ${m}, got none`);
  for (const [n, v] of Object.entries(h.ha.nodes)) {
    v.ports.forEach((p, i) => { if (!(p.switch in h.ha.switches)) errs.push(`ha.nodes.${n}.ports[${i}].switch: expected one of ha.switches (${Object.keys(h.ha.switches).join(", ") || "none"}), got ${JSON.stringify(p.switch)}`); });
  }
  return errs;
}
