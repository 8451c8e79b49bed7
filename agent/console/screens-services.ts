// Screen 2 (Services) and what `bollard services` prints: for MySQL and Redis, who is primary
// and whether it is writable, each replica's source, lag and position (GTID set / offset);
// each node's portal routes and the VIP; failover procedures running, nodes held out, and
// the anti-flapping holds.
import type { VmBackupStatus } from "../backup/vm-status.ts";
import type { BackupSummary } from "../runtime/backup-component.ts";
import { parseGtid, weight } from "../resources/gtid.ts";
import { ago, alive, assignments, cols, cut, factsOf, flags, haOf, holdsVip, membersOf, services, type Facts, type Model, type Svc } from "./model.ts";
import type { Line } from "./vt100.ts";
import type { SiteView } from "../runtime/site-runtime.ts";

export interface ServiceRow {
  node: string;
  self: boolean;
  up: boolean | null;
  /** the node answers on the bus; its report is stale otherwise */
  reachable: boolean;
  role: string;
  writable: boolean | null;
  source: string | null;
  /** MySQL: transactions behind the primary; Redis: bytes behind; null when unknown */
  lag: number | null;
  position: string;
  heldOut: string | null;
}

export interface ServiceView {
  svc: Svc;
  holder: string | null;
  rows: ServiceRow[];
}

/** GTID sets are MySQL's (uuid:1-5) or MariaDB's (0-1-5); the text says which. */
function gtidWeight(text: string): bigint | null {
  if (!text) return 0n;
  const r = parseGtid(text.includes(":") ? "mysql" : "mariadb", text);
  return r.ok ? weight(r.value) : null;
}

function lagOf(svc: Svc, primary: Facts | null, x: Facts): number | null {
  if (!primary || x.role !== "replica") return null;
  if (svc === "redis") {
    const d = Number(primary.applied) - Number(x.applied);
    return Number.isFinite(d) ? Math.max(0, d) : null;
  }
  const p = gtidWeight(primary.applied);
  const r = gtidWeight(x.applied);
  return p === null || r === null ? null : Math.max(0, Number(p - r));
}

export function serviceViews(m: Model): ServiceView[] {
  const a = assignments(m);
  const ha = haOf(m);
  return services(m).map((svc) => {
    const holder = a[svc] ?? null;
    const primary = holder ? factsOf(m, holder, svc) : null;
    const rows = membersOf(m).map((n): ServiceRow => {
      const f = factsOf(m, n, svc);
      const reachable = alive(m, n) !== false;
      return {
        node: n,
        self: n === m.self,
        up: f ? f.up && reachable : null,
        reachable,
        role: f ? f.role : "-",
        writable: f ? f.writable : null,
        source: f?.source ?? null,
        lag: f && reachable ? lagOf(svc, primary, f) : null,
        position: f ? f.applied : "",
        heldOut: (n === m.self ? ha?.heldOut[svc] : f?.heldOut) ?? null,
      };
    });
    return { svc, holder, rows };
  });
}

const W = [8, 8, 5, 3, 7, 8];

function table(v: ServiceView): string[] {
  const name = v.svc === "mysql" ? "MySQL" : "Redis";
  const hr = v.rows.find((r) => r.node === v.holder);
  const state = !v.holder ? "NO PRIMARY" : !hr?.reachable ? `primary ${v.holder} (DOWN)` : hr.writable ? `primary ${v.holder}, writable` : `primary ${v.holder}, NOT WRITABLE`;
  const lagHead = v.svc === "mysql" ? "LAG tx" : "LAG B";
  const posHead = v.svc === "mysql" ? "APPLIED GTID" : "OFFSET";
  const out = [`${name}: ${state}`, cols(["NODE", "ROLE", "UP", "RW", "SOURCE", lagHead, posHead], W)];
  for (const r of v.rows) {
    out.push(
      cols(
        [
          `${r.node}${r.self ? "*" : ""}`,
          r.heldOut ? "HELD-OUT" : r.role,
          r.up === null ? "-" : !r.reachable ? "DOWN?" : r.up ? "up" : "DOWN",
          r.writable === null ? "-" : r.writable ? "rw" : "ro",
          r.source ?? "-",
          r.lag === null ? "-" : String(r.lag),
          r.position || "-",
        ],
        W,
      ),
    );
  }
  return out;
}

/** The portal's routes and the VIP on each node. */
function portalTable(m: Model): string[] {
  const ha = haOf(m);
  if (!ha) return [];
  const out = [cols(["PORTAL", "MYSQL->", "REDIS->", "VIP"], [8, 8, 8])];
  for (const n of membersOf(m)) {
    const p = n === m.self ? ha.facts.portal : (ha.peers[n]?.portal ?? null);
    const vip = holdsVip(m, n);
    const stale = alive(m, n) === false ? " (down; last report)" : "";
    out.push(cols([`${n}${n === m.self ? "*" : ""}`, p ? (p.mysql ?? "none") : "-", p ? (p.redis ?? "none") : "-", `${vip === null ? "-" : vip ? "HELD" : "-"}${stale}`], [8, 8, 8]));
  }
  return out;
}

/** Procedures running (the leader's), nodes held out, anti-flapping holds. */
function notes(m: Model): string[] {
  const ha = haOf(m);
  const f = flags(m);
  const out: string[] = [];
  for (const p of ha?.procedures ?? []) out.push(`running: ${p}`);
  for (const v of serviceViews(m)) for (const r of v.rows) if (r.heldOut) out.push(`${v.svc} on ${r.node} held out: ${r.heldOut}`);
  for (const svc of ["mysql", "redis"]) {
    const last = Number(f[`failover:${svc}`] ?? NaN);
    const ack = Number(f[`ack:${svc}`] ?? NaN);
    if (Number.isFinite(last) && !(ack >= last)) out.push(`${svc} failed over ${ago(m.now - last)} ago: no automatic failover until acknowledged or the anti-flapping period ends`);
    if (f[`freeze:${svc}`]) out.push(`${svc} frozen on ${f[`freeze:${svc}`]} (switchover)`);
  }
  if (f.ha === "disarmed") out.push("HA DISARMED: no automatic failover");
  return out;
}

/** `bollard services` and screen 2, without the height limit. */
export function servicesLines(m: Model): string[] {
  if (!haOf(m) && !services(m).length) return ["no data path: this agent runs without an ha section (or has not reported yet)"];
  const out: string[] = [];
  for (const v of serviceViews(m)) out.push(...table(v), "");
  out.push(...portalTable(m));
  out.push(...siteLines(haOf(m)?.sites ?? []));
  out.push(...backupLines(m.status.body?.backup as BackupSummary | null | undefined, m.status.body?.vmBackups as VmBackupStatus[] | null | undefined));
  const n = notes(m);
  if (n.length) out.push("", ...n);
  return out.map((l) => cut(l, 80));
}

export function servicesScreen(m: Model, rows: number): Line[] {
  const lines = servicesLines(m);
  if (lines.length <= rows) return lines;
  return [...lines.slice(0, rows - 1), `... ${lines.length - rows + 1} more lines: bollard services`];
}

const agoS = (s: number) => (s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

/** Backups (issue 23, docs/backup.md): one line per kind, one for the binlog archive, and one
 *  per VM this node runs (`vms`, the VM backup jobs' status; a VM's backups are taken where it runs). */
export function backupLines(b: BackupSummary | null | undefined, vms?: readonly VmBackupStatus[] | null): string[] {
  const vmLines = (vms ?? []).map((v) => `Backup vm ${v.vm.padEnd(10)} last good ${v.ageS !== null ? `${agoS(v.ageS)} ago${v.verified ? ", verified" : ""}` : "NONE"}${v.bad ? `, ${v.bad} BAD` : ""}` +
    `${v.lastBackupJob && !v.lastBackupJob.ok ? `; last backup FAILED at ${v.lastBackupJob.at.slice(11, 19)}` : ""}${v.lastVerifyJob && !v.lastVerifyJob.ok ? "; last verification BAD" : ""}`);
  if (!b) return vmLines.length ? ["", ...vmLines] : [];
  const out = [""];
  for (const k of b.kinds) out.push(`Backup ${k.kind.padEnd(6)} last good ${k.lastGood ? `${agoS(k.ageS ?? 0)} ago${k.verified ? ", verified" : ""}` : "NONE"}${k.bad ? `, ${k.bad} BAD` : ""}${b.running.includes(k.kind) ? " (one running)" : ""}`);
  if (!b.kinds.length) out.push("Backup: none yet (bollard backup now mysql)");
  const a = b.archive;
  if (a) out.push(`Binlog archive on ${a.node}: ${a.gap ? "GAP" : a.running ? "streaming" : "NOT streaming"} from ${a.primary ?? "-"}, lag ${a.lagS === null ? "?" : `${a.lagS.toFixed(1)} s`}, behind ${a.behind ?? "?"} trx`);
  return [...out, ...vmLines];
}

/** The remote sites (issue 18): state, source, lag in seconds and transactions. */
export function siteLines(sites: readonly SiteView[]): string[] {
  if (!sites.length) return [];
  const out = ["", "Remote site  state        lag s  lag trx  source"];
  for (const x of sites) {
    out.push(`${x.site.padEnd(12)} ${x.state.padEnd(12)} ${String(x.lagS ?? "-").padStart(5)}  ${String(x.lagTrx ?? "-").padStart(7)}  ${x.source ?? "-"}`);
    if (x.state !== "replicating" && x.why) out.push(`  ${x.why}`);
  }
  return out;
}
