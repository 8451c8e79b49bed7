// Alarm types (DESIGN §6): what the rules read (one node's readings), what they produce
// (conditions), and what the engine keeps (alarms and their transitions). Everything here
// is plain data, so a reading can come from a driver, a test or the simulator alike.
// Times are wall-clock milliseconds since the epoch, passed in by the caller.
import type { VmAlarmInput } from "../ha/vm-types.ts";

export type Severity = "critical" | "major" | "minor" | "info";
/** Most severe first. */
export const SEVERITIES: readonly Severity[] = ["critical", "major", "minor", "info"];
export const severityRank = (s: Severity): number => SEVERITIES.indexOf(s);

export const RULES = [
  "temperature",
  "fan",
  "psu",
  "sensor",
  "sel",
  "bmc-unreachable",
  "switch-unreachable",
  "port-down",
  "port-disabled",
  "bond-degraded",
  "disk-full",
  "memory-high",
  "time-unsynced",
  "service-down",
  "replica-broken",
  "repl-lag",
  "node-lost",
  "not-ready",
  "quorum-lost",
  "clock-skew",
  "fence-failed",
  "failover-done",
  "vm-down",
  "vm-restart-failed",
  "vm-mirror-degraded",
  "vm-no-capacity",
  "writes-down",
  "data-diverged",
  "upgrade-failed",
  "site-lag",
  "site-down",
  "site-promoted",
  "site-diverged",
  "backup-failed",
  "backup-missed",
  "backup-verify-failed",
  "backup-archive-gap",
  "backup-archive-down",
  "backup-target-full",
] as const;
export type RuleName = (typeof RULES)[number];

// ---- inputs: the readings of one node -----------------------------------------------

/** One IPMI sensor; hw/ipmi-parse.ts `Sensor` is assignable to it. */
export interface SensorInput {
  name: string;
  /** null for discrete sensors and for "na" / "no reading" */
  value: number | null;
  /** "degrees C", "RPM", "Volts", "discrete", ... */
  unit: string;
  status?: string;
  /** ipmitool's judgement of the reading */
  severity?: "ok" | "warning" | "critical" | "unknown";
  discrete?: boolean;
  thresholds?: Partial<Record<"lnr" | "lcr" | "lnc" | "unc" | "ucr" | "unr", number | null>>;
  /** discrete: asserted state offsets (IPMI 2.0 table 42-3) */
  offsets?: number[];
  /** discrete: state text, e.g. "Presence detected, Failure detected" */
  states?: string;
}

/** One SEL record; hw/ipmi-parse.ts `SelEntry` is assignable to it. */
export interface SelInput {
  id: number;
  sensor: string;
  event: string;
  direction: "asserted" | "deasserted" | null;
  detail?: string;
}

/** One BMC as polled by the reporting node: reachability, then its sensors and new SEL. */
export interface BmcInput {
  /** the node whose BMC this is */
  node: string;
  reachable: boolean;
  error?: string;
  sensors?: SensorInput[];
  /** entries new since the last poll */
  sel?: SelInput[];
}

export interface PortInput {
  /** ifName or ifDescr, e.g. "swp1" */
  port: string;
  /** from the config's port map; null for a port that leads to no node */
  node?: string | null;
  nic?: string | null;
  /** IF-MIB ifOperStatus / ifAdminStatus words; null when unknown */
  oper: string | null;
  admin: string | null;
}

export interface SwitchInput {
  switch: string;
  reachable: boolean;
  error?: string;
  ports?: PortInput[];
}

export interface BondSlaveInput {
  name: string;
  /** "up" or "down" (MII Status) */
  mii: string;
  linkFailures?: number;
  /** the switch this NIC is cabled to; inferred from the port map when absent */
  switch?: string | null;
}

export interface BondInput {
  node: string;
  bond: string;
  mode?: string;
  activeSlave?: string | null;
  slaves: BondSlaveInput[];
}

export interface HostInput {
  node: string;
  filesystems?: { mount: string; usedRatio: number }[];
  memUsedRatio?: number | null;
  timeSync?: "synced" | "unsynced" | "unknown";
}

/** The subset of cluster/view.ts NodeView the rules read; a NodeView is assignable. */
export interface ClusterInput {
  node: string;
  quorum: boolean;
  member: boolean;
  peers: { name: string; alive: boolean; skewMs: number | null }[];
}

/** resources/types.ts MysqlStatus is assignable. */
export interface MysqlInput {
  up: boolean;
  role: "primary" | "replica" | "none";
  ioRunning: boolean;
  sqlRunning: boolean;
  lagSeconds: number | null;
  lastError: string | null;
  /** its data differs from the primary's at the last data check (resources/mysql-verify.ts) */
  diverged?: string;
}

/** resources/types.ts RedisStatus is assignable. */
export interface RedisInput {
  up: boolean;
  role: "master" | "replica" | "none";
  linkUp: boolean;
  source?: string | null;
}

/** N+1 readiness as ha/readiness.ts judges it (its Readiness is assignable): per node, what
 *  losing it would stop (verdict "no") or slow ("slower"); ok null: this node cannot tell. */
export interface ReadyInput {
  ok: boolean | null;
  nodes: { node: string; verdict: "yes" | "slower" | "no" | "down"; blocks: { effect: string; why: string }[]; slows: { effect: string; why: string }[] }[];
}

/** The acting leader's word on a service without a writable primary clients can reach
 *  (ha/manager.ts WritesDown): only a leader judges it; everyone else clears its own. */
export interface WritesDownInput {
  /** this node leads and acts: its list is the cluster's */
  leading: boolean;
  services: readonly string[];
  down: readonly { svc: string; since: number; forMs: number; why: string; command: string | null }[];
}

/** The remote sites as this node judges them (ha/site.ts): alarms only on the acting leader. */
export interface SitesInput {
  sites: readonly { site: string; alarms: readonly { rule: "site-lag" | "site-down" | "site-promoted" | "site-diverged"; severity: Severity; text: string; detail: string }[] }[];
}

/** One-shot happenings: they raise an alarm that is held after the input is gone. */
export type EventInput =
  | { kind: "fence-failed"; target: string; detail: string }
  | { kind: "fence-done"; target: string }
  | { kind: "failover-done"; service: string; from: string | null; to: string; ms: number }
  /** a rollout stopped: a node's health gate failed and its old bundle was put back (upgrade/) */
  | { kind: "upgrade-failed"; target: string; detail: string }
  | { kind: "upgrade-done" };

export interface Readings {
  /** the reporting node */
  node: string;
  bmcs?: BmcInput[];
  switches?: SwitchInput[];
  bonds?: BondInput[];
  host?: HostInput;
  cluster?: ClusterInput;
  mysql?: MysqlInput | null;
  redis?: RedisInput | null;
  writes?: WritesDownInput;
  /** the remote sites (issue 18) */
  sites?: SitesInput;
  /** events since the last evaluation */
  events?: EventInput[];
  /** could the cluster lose each node now (runtime/readiness.ts) */
  readiness?: ReadyInput | null;
  /** the VMs, as the leader's VM manager judges them (alarms/rules-vm.ts) */
  vms?: VmAlarmInput;
  /** backups, as the acting leader judges them from the catalog (alarms/rules-backup.ts) */
  backups?: BackupAlarmInput;
}

/** What is wrong with the backups (backup/schedule.ts backupProblems); judge false: this node
 *  does not judge them (not the acting leader) and clears what it raised. */
export interface BackupAlarmInput {
  judge: boolean;
  judged: { rule: RuleName; subject: string }[];
  problems: { rule: RuleName; subject: string; severity: Severity; text: string; detail: string }[];
}

// ---- outputs of the rules -------------------------------------------------------------

/** A rule's finding: "this alarm's condition is true now". */
export interface Condition {
  id: string;
  rule: RuleName;
  severity: Severity;
  /** the node the alarm is about (for a switch-only alarm: the switch) */
  node: string;
  /** stable text: names node and part, no measured values (a change is an update) */
  text: string;
  /** the measured values; refreshed without a transition */
  detail?: string;
  /** the subject whose evaluation decides this alarm (see Evaluation.scopes) */
  scope: string;
  /** events: held after the input is gone, for `hold` ms or until acknowledged */
  hold?: number | "ack";
}

export interface Evaluation {
  conditions: Condition[];
  /** subjects that were read and judged: an alarm of such a scope without a condition is
   * false. An alarm whose scope is absent (BMC unreachable, no reading) is held as it is. */
  scopes: string[];
  /** event alarm ids settled by a later event (fence-failed by fence-done) */
  resolved: string[];
}

// ---- alarms ---------------------------------------------------------------------------

export type AlarmState = "raised" | "acknowledged" | "cleared";

export interface Alarm {
  id: string;
  rule: RuleName;
  severity: Severity;
  node: string;
  /** the node whose engine raised it */
  reporter: string;
  text: string;
  detail: string | null;
  state: AlarmState;
  /** 1 for the first occurrence of this id; a re-raise after a clear is the next one */
  occurrence: number;
  raisedAt: number;
  updatedAt: number;
  ackedBy: string | null;
  ackedAt: number | null;
  clearedAt: number | null;
  /** how often the condition came back while held (and within the flap window) */
  flaps: number;
  flapping: boolean;
  /** null: held while its condition is true; a time: an event alarm that clears itself
   * then; "ack": an event alarm held until acknowledged (or settled by a later event) */
  until: number | "ack" | null;
}

export type TransitionKind = "raised" | "updated" | "acked" | "cleared";

export interface Transition {
  kind: TransitionKind;
  at: number;
  /** the alarm after the transition */
  alarm: Alarm;
}

// ---- ids ------------------------------------------------------------------------------

/** Alarm ids: one MQTT topic level (bus/topics.ts isAlarmId). */
export const ALARM_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;
/** Who acknowledged an alarm (`user@host`, `ops@console`): printable ASCII, 1-100. */
export const ACKED_BY_RE = /^[\x20-\x7e]{1,100}$/;

/** FNV-1a 32-bit, as 8 hex digits: a stable suffix for names that had to be rewritten. */
export function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** One id segment: kept as is when it is [A-Za-z0-9._-]{1,40}, else rewritten + hash. */
export function idPart(s: string): string {
  if (/^[A-Za-z0-9._-]{1,40}$/.test(s)) return s;
  const clean = s.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 30);
  return `${clean || "x"}-${fnv1a(s).slice(0, 6)}`;
}

/** `rule:part:part`, a valid alarm id for any parts. */
export function alarmId(rule: RuleName, ...parts: string[]): string {
  const id = [rule, ...parts.map(idPart)].join(":");
  return id.length <= 128 ? id : `${id.slice(0, 118)}-${fnv1a(id)}`;
}
