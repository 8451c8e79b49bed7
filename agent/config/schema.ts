// The agent's config file (/etc/bollard/bollard.yaml): its schema, the typed `Config` the
// rest of the agent receives, and the relations between keys. The schema describes the
// YAML as written (snake_case); `toConfig` turns a valid document into the camelCase
// object that is passed down. Every leaf's error text is what it expects, so the
// formatter in load.ts can print `path: expected X, got Y` (docs/config.md lists them all).
import { z } from "zod";
import type { ClusterConfig } from "../bus/messages.ts";
import type { TlsMaterial } from "../bus/tls.ts";
import type { Level } from "../env/env.ts";
import { DEFAULT_TIMING, checkTiming, type Timing } from "../cluster/timing.ts";
import { HaSection, MysqlSection, PortalSection, RedisSection, checkHa, type HaConfig } from "./ha-schema.ts";
import { isHostPort } from "./host-port.ts";
import { SitesSection, checkSites, toSites, type SiteConfig } from "./site-schema.ts";
import { AlarmsSection, NotifySection, checkAlarmsRelations, toAlarmsConfig, toNotifyConfig, type AlarmsConfig, type NotifyConfig } from "../alarms/config.ts";
import { HostSection, toHostOptions, type HostOptions } from "../hw/host.ts";
import { MetricsSection, toMetricsConfig, type MetricsConfig } from "../runtime/metrics.ts";
import { BackupSection, toBackupConfig, type BackupConfig } from "./backup-schema.ts";
import { VmsSection, checkVms, toVmsConfig, type VmsConfig } from "./vm-schema.ts";
import { WebSection, checkWeb, toWebConfig, type WebConfig } from "../web/config.ts";

export const DEFAULT_CONFIG_PATH = "/etc/bollard/bollard.yaml";
export const DEFAULT_STATE_DIR = "/var/lib/bollard";

export interface MemberConfig {
  name: string;
  /** host:port of the member's MQTT broker */
  address: string;
}

export interface JoinConfig {
  tokenFile: string;
  /** brokers to say hello to; default: the other members' */
  peers: string[];
  /** this node's own broker, host:port (default: its entry in members) */
  address: string | null;
  /** with no persisted state: how long to wait for a leader before forming the cluster as a founder */
  timeoutMs: number;
  /** the token itself, read from tokenFile by load.ts (null when secrets were not read) */
  token: Buffer | null;
}

/** The agent owns its local broker's authentication: it writes these from the committed config. */
export interface BrokerFiles {
  passwordFile: string;
  aclFile: string;
  pidFile: string;
}

/** The bus's TLS files (docs/bus.md "TLS and the trust model"); `material` is read by load.ts. */
export interface BusTlsConfig {
  caFile: string;
  certFile: string;
  keyFile: string;
  /** the three files' contents, checked (null when secrets were not read) */
  material: TlsMaterial | null;
}

export interface Config {
  cluster: {
    name: string;
    /** this node */
    node: string;
    /** bootstrap membership; the replicated cluster config supersedes it once persisted */
    members: MemberConfig[];
    join: JoinConfig | null;
  };
  bus: {
    username: string;
    /** resolved: from `password`, or read from `password_file`; "" when the join flow provides it */
    password: string;
    passwordFile: string | null;
    broker: BrokerFiles | null;
    /** null: plain MQTT (tests and old configs only; the agent warns at start) */
    tls: BusTlsConfig | null;
  };
  stateDir: string;
  log: { level: Level };
  timing: Timing;
  control: { socket: string };
  /** the data path (issue 4); null: the agent runs the cluster core only */
  ha: HaConfig | null;
  /** MySQL replicas in other rooms (issue 18, docs/site.md); absent or empty: none */
  sites?: SiteConfig[];
  /** alarm damping, rule thresholds, history (docs/alarms.md) */
  alarms: AlarmsConfig;
  /** webhooks for alarm transitions */
  notify: NotifyConfig;
  /** the Prometheus endpoint (docs/metrics.md) */
  metrics: MetricsConfig;
  /** the hardware watch: what to poll how often (the BMCs and switches are ha's) */
  hw: HwConfig;
  /** the VMs (docs/vm.md); null: the agent runs none */
  vms: VmsConfig | null;
  /** the web console (docs/web.md) */
  web: WebConfig;
  /** backups and point-in-time restore (docs/backup.md); null: none */
  backup: BackupConfig | null;
  /** N+1 readiness (docs/readiness.md) */
  readiness: ReadinessConfig;
}

export interface ReadinessConfig {
  enabled: boolean;
  /** each other node's IPMI and switch-port fence paths are checked this often, spread out */
  fenceCheckMs: number;
  /** a check older than this proves nothing any more */
  checkMaxAgeMs: number;
  /** a MySQL replica that heard nothing from its primary for this long is not in sync */
  recvStaleMs: number;
  /** a Redis replica further behind than this is not in sync */
  redisLagBytes: number;
}

export interface HwConfig {
  /** bonds, NICs and filesystems of this host (hw/host.ts) */
  host: HostOptions;
  /** the BMC, switches and bonds are read this often */
  pollMs: number;
  /** the SEL, and CPU, memory, filesystems and time sync, this often */
  selEveryMs: number;
  hostEveryMs: number;
}

const expect = (what: string) => ({ error: what });

/** A node or cluster name: it is an MQTT topic segment and matches messages.ts `name`. */
export const NAME_RE = /^[a-z][a-z0-9-]{0,30}$/;
const NAME_TEXT = "a name of a-z, 0-9 and -, starting with a letter, at most 31 characters";
const name = () => z.string(expect(NAME_TEXT)).regex(NAME_RE);

export { isHostPort };
const hostPort = () => z.string(expect("host:port")).refine(isHostPort);

const absPath = (what: string) =>
  z.string(expect(`an absolute path (${what})`)).refine((v) => v.startsWith("/") && !v.includes("\0"));

const ms = (key: keyof Timing) =>
  z.number(expect("a whole number of milliseconds > 0")).int().positive().max(3_600_000).default(DEFAULT_TIMING[key]);

const section = <T extends z.core.$ZodLooseShape>(shape: T, what: string) =>
  z.object(shape, expect(`a mapping (${what})`)).strict();

export const ConfigFile = section(
  {
    cluster: section(
      {
        name: name(),
        node: name(),
        members: z
          .array(section({ name: name(), address: hostPort() }, "name and address"), expect("a list of up to 15 members"))
          .max(15),
        join: section(
          {
            token_file: absPath("the join token file"),
            peers: z.array(hostPort(), expect("a list of host:port")).optional(),
            address: hostPort().optional(),
            timeout_ms: z.number(expect("a whole number of milliseconds > 0")).int().positive().max(600_000).default(5000),
          },
          "token_file, peers, address, timeout_ms",
        ).optional(),
      },
      "name, node, members, join",
    ),
    bus: section(
      {
        username: z.string(expect("a non-empty string")).min(1).max(64).optional(),
        password: z.string(expect("a non-empty string")).min(1).max(256).optional(),
        password_file: absPath("a file holding the password").optional(),
        broker: section(
          {
            password_file: absPath("the local broker's password_file"),
            acl_file: absPath("the local broker's acl_file"),
            pid_file: absPath("the local broker's pid_file"),
          },
          "password_file, acl_file, pid_file",
        ).optional(),
        tls: section(
          {
            ca_file: absPath("the cluster CA's certificate, PEM"),
            cert_file: absPath("this node's certificate, PEM, issued by that CA"),
            key_file: absPath("this node's private key, PEM, 0600"),
          },
          "ca_file, cert_file, key_file",
        ).optional(),
      },
      "username, password or password_file, broker, tls",
    ),
    state_dir: absPath("the state directory").default(DEFAULT_STATE_DIR),
    log: section(
      { level: z.enum(["debug", "info", "warn", "error"], expect("one of debug, info, warn, error")).default("info") },
      "level",
    ).prefault({}),
    timing: section(
      {
        tick_ms: ms("tickMs"),
        heartbeat_ms: ms("heartbeatMs"),
        peer_dead_ms: ms("peerDeadMs"),
        election_jitter_ms: ms("electionJitterMs"),
        lease_ms: ms("leaseMs"),
        quorum_loss_ms: ms("quorumLossMs"),
        max_drift: z.number(expect("a number in [0, 0.1)")).min(0).lt(0.1).default(DEFAULT_TIMING.maxDrift),
        clock_jump_ms: ms("clockJumpMs"),
        tilt_hold_ms: ms("tiltHoldMs"),
      },
      "the cluster timings, in ms",
    ).prefault({}),
    control: section({ socket: absPath("the control socket").optional() }, "socket").prefault({}),
    ha: HaSection.optional(),
    mysql: MysqlSection.optional(),
    redis: RedisSection.optional(),
    portal: PortalSection.optional(),
    vms: VmsSection.optional(),
    backup: BackupSection.optional(),
    sites: SitesSection.optional(),
    alarms: AlarmsSection.prefault({}),
    notify: NotifySection.prefault({}),
    metrics: MetricsSection.prefault({}),
    web: WebSection.prefault({}),
    hw: section(
      {
        host: HostSection.prefault({}),
        poll_ms: z.number(expect("a whole number of milliseconds, 200 to 60000")).int().min(200).max(60_000).default(1000),
        sel_every_ms: z.number(expect("a whole number of milliseconds, 1000 to 3600000")).int().min(1000).max(3_600_000).default(10_000),
        host_every_ms: z.number(expect("a whole number of milliseconds, 1000 to 3600000")).int().min(1000).max(3_600_000).default(10_000),
      },
      "host, poll_ms, sel_every_ms, host_every_ms",
    ).prefault({}),
    readiness: section(
      {
        enabled: z.boolean(expect("true or false")).default(true),
        fence_check_ms: z.number(expect("a whole number of milliseconds, 5000 to 3600000")).int().min(5000).max(3_600_000).default(60_000),
        check_max_age_ms: z.number(expect("a whole number of milliseconds, 5000 to 86400000")).int().min(5000).max(86_400_000).default(180_000),
        recv_stale_ms: z.number(expect("a whole number of milliseconds, 500 to 600000")).int().min(500).max(600_000).default(5000),
        redis_lag_bytes: z.number(expect("a whole number of bytes >= 0")).int().min(0).default(1 << 20),
      },
      "enabled, fence_check_ms, check_max_age_ms, recv_stale_ms, redis_lag_bytes",
    ).prefault({}),
  },
  "the bollard config",
);
export type ConfigFile = z.infer<typeof ConfigFile>;

/** snake_case key in the file for each Timing field (checkTiming's messages use these). */
export const TIMING_KEYS: Record<keyof Timing, string> = {
  tickMs: "tick_ms",
  heartbeatMs: "heartbeat_ms",
  peerDeadMs: "peer_dead_ms",
  electionJitterMs: "election_jitter_ms",
  leaseMs: "lease_ms",
  quorumLossMs: "quorum_loss_ms",
  maxDrift: "max_drift",
  clockJumpMs: "clock_jump_ms",
  tiltHoldMs: "tilt_hold_ms",
};

/** The typed config from a valid file. `password` is the resolved secret (load.ts reads the file). */
export function toConfig(f: ConfigFile, password: string): Config {
  const t = f.timing;
  return {
    cluster: {
      name: f.cluster.name,
      node: f.cluster.node,
      members: f.cluster.members.map((m) => ({ name: m.name, address: m.address })),
      join: f.cluster.join ? joinConfig(f) : null,
    },
    bus: {
      username: f.bus.username ?? f.cluster.node,
      password,
      passwordFile: f.bus.password_file ?? null,
      broker: f.bus.broker ? { passwordFile: f.bus.broker.password_file, aclFile: f.bus.broker.acl_file, pidFile: f.bus.broker.pid_file } : null,
      tls: f.bus.tls ? { caFile: f.bus.tls.ca_file, certFile: f.bus.tls.cert_file, keyFile: f.bus.tls.key_file, material: null } : null,
    },
    stateDir: f.state_dir,
    log: { level: f.log.level },
    timing: {
      tickMs: t.tick_ms,
      heartbeatMs: t.heartbeat_ms,
      peerDeadMs: t.peer_dead_ms,
      electionJitterMs: t.election_jitter_ms,
      leaseMs: t.lease_ms,
      quorumLossMs: t.quorum_loss_ms,
      maxDrift: t.max_drift,
      clockJumpMs: t.clock_jump_ms,
      tiltHoldMs: t.tilt_hold_ms,
    },
    control: { socket: f.control.socket ?? `${f.state_dir.replace(/\/+$/, "")}/agent.sock` },
    ha: f.ha ? { ha: f.ha, mysql: f.mysql ?? null, redis: f.redis ?? null, portal: f.portal ?? null } : null,
    sites: toSites(f.sites),
    alarms: toAlarmsConfig(f.alarms),
    notify: toNotifyConfig(f.notify),
    metrics: toMetricsConfig(f.metrics),
    hw: { host: toHostOptions(f.hw.host), pollMs: f.hw.poll_ms, selEveryMs: f.hw.sel_every_ms, hostEveryMs: f.hw.host_every_ms },
    vms: f.vms ? toVmsConfig(f.vms, (n) => f.ha?.nodes[n]?.address) : null,
    web: toWebConfig(f.web),
    backup: f.backup ? toBackupConfig(f.backup) : null,
    readiness: {
      enabled: f.readiness.enabled, fenceCheckMs: f.readiness.fence_check_ms, checkMaxAgeMs: f.readiness.check_max_age_ms,
      recvStaleMs: f.readiness.recv_stale_ms, redisLagBytes: f.readiness.redis_lag_bytes,
    },
  };
}

function joinConfig(f: ConfigFile): JoinConfig {
  const j = f.cluster.join!;
  const self = f.cluster.members.find((m) => m.name === f.cluster.node);
  return {
    tokenFile: j.token_file,
    peers: j.peers ? [...j.peers] : f.cluster.members.filter((m) => m.name !== f.cluster.node).map((m) => m.address),
    address: j.address ?? self?.address ?? null,
    timeoutMs: j.timeout_ms,
    token: null,
  };
}

/** Relations between keys of a schema-valid file, each a finished `path: ...` error line. */
export function checkRelations(f: ConfigFile): string[] {
  const errs: string[] = [];
  const names = f.cluster.members.map((m) => m.name);
  const list = (xs: string[]) => xs.join(", ");
  if (!f.cluster.join && !names.includes(f.cluster.node)) {
    errs.push(
      `cluster.node: expected one of the members (${list(names)}), got ${JSON.stringify(f.cluster.node)}; ` +
        "add it to cluster.members, or set cluster.join to join an existing cluster",
    );
  }
  dupes(names).forEach((n) => errs.push(`cluster.members: expected unique names, got ${JSON.stringify(n)} more than once`));
  dupes(f.cluster.members.map((m) => m.address)).forEach((a) =>
    errs.push(`cluster.members: expected one broker address per member, got ${JSON.stringify(a)} more than once`),
  );
  const has = (v: unknown) => v !== undefined;
  if (has(f.bus.password) && has(f.bus.password_file)) errs.push("bus: expected at most one of password or password_file, got both");
  if (!has(f.bus.password) && !has(f.bus.password_file) && !f.cluster.join) {
    errs.push("bus: expected one of password or password_file, got neither (or set cluster.join: the join gives the node its bus password)");
  }
  if (!f.cluster.join && names.length === 0) errs.push("cluster.members: expected at least one member, got none (or set cluster.join)");
  if (f.cluster.join) {
    const j = joinConfig(f);
    if (!j.address) errs.push(`cluster.join.address: expected this node's broker host:port (${f.cluster.node} is not in cluster.members), got none`);
    if (j.peers.length === 0) errs.push("cluster.join.peers: expected at least one peer broker host:port, got none");
  }
  if (f.ha) errs.push(...checkHa({ ha: f.ha, mysql: null, redis: null, portal: null }, names));
  else if (f.mysql || f.redis || f.portal) errs.push("ha: expected an ha section (nodes' addresses and fencing) with mysql, redis or portal, got none");
  errs.push(...checkSites(f.sites, !!f.mysql));
  errs.push(...checkAlarmsRelations(f.alarms));
  if (f.vms) errs.push(...checkVms(f.vms, names, (n) => f.ha?.nodes[n]?.address));
  errs.push(...checkWeb(f.web));
  if (f.backup && !f.mysql && !f.redis) errs.push("backup: expected mysql or redis sections to back up, got neither");
  if (f.readiness.check_max_age_ms < f.readiness.fence_check_ms) {
    errs.push(`readiness.check_max_age_ms: expected at least readiness.fence_check_ms (${f.readiness.fence_check_ms}): every check would be stale before the next, got ${f.readiness.check_max_age_ms}`);
  }
  const timing = toConfig(f, "").timing;
  for (const msg of checkTiming(timing)) errs.push(`timing: ${msg} (got ${timingValues(msg, timing)})`);
  return errs;
}

/** The values of the keys a checkTiming message names, as `tick_ms=300, heartbeat_ms=200`. */
function timingValues(msg: string, t: Timing): string {
  const keys = (Object.keys(TIMING_KEYS) as (keyof Timing)[]).filter((k) =>
    new RegExp(`\\b${TIMING_KEYS[k]}\\b`).test(msg),
  );
  return keys.map((k) => `${TIMING_KEYS[k]}=${t[k]}`).join(", ");
}

function dupes(xs: string[]): string[] {
  return [...new Set(xs.filter((x, i) => xs.indexOf(x) !== i))];
}

/** The register a node starts from before it has persisted one (epoch 0, term 0, no assignments). */
export function bootstrapConfig(c: Config): ClusterConfig {
  return { epoch: 0, term: 0, members: c.cluster.members.map((m) => ({ name: m.name, bus: m.address })), assignments: {}, flags: {} };
}
