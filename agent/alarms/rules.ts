// Alarm rules (DESIGN §6), pure: one node's readings in, the conditions that are true now
// out, plus the subjects that were judged (Evaluation.scopes). A subject that could not be
// read (BMC unreachable, sensor "na", replica lag unknown) is not judged, so its alarm is
// held rather than cleared by a missing reading. Hardware rules are in rules-hw.ts; host,
// cluster, resources and events are here.
import type { RuleConfig } from "./config.ts";
import { Collector, levelUp } from "./collector.ts";
import { bmcRules, bondRules, switchRules } from "./rules-hw.ts";
import { readinessRules } from "./rules-ready.ts";
import { vmRules } from "./rules-vm.ts";
import { backupRules } from "./rules-backup.ts";
import { siteRules } from "./rules-site.ts";
import {
  alarmId,
  idPart,
  type ClusterInput,
  type EventInput,
  type Evaluation,
  type HostInput,
  type MysqlInput,
  type Readings,
  type RedisInput,
  type WritesDownInput,
} from "./types.ts";

/** Every condition true now in `r`, and the subjects judged. `active`: ids held now. */
export function evaluate(r: Readings, cfg: RuleConfig, active: ReadonlySet<string> = new Set()): Evaluation {
  const out = new Collector(cfg, active);
  for (const b of r.bmcs ?? []) bmcRules(out, b);
  for (const s of r.switches ?? []) switchRules(out, s);
  for (const b of r.bonds ?? []) bondRules(out, b, r.switches ?? []);
  if (r.host) hostRules(out, r.host);
  if (r.cluster) clusterRules(out, r.cluster);
  if (r.mysql) mysqlRules(out, r.node, r.mysql);
  if (r.redis) redisRules(out, r.node, r.redis);
  if (r.writes) writesDownRules(out, r.node, r.writes);
  if (r.sites) siteRules(out, r.node, r.sites);
  for (const e of r.events ?? []) eventRules(out, e);
  if (r.readiness) readinessRules(out, r.readiness);
  if (r.vms) vmRules(out, r.node, r.vms);
  if (r.backups) backupRules(out, r.node, r.backups);
  return { conditions: out.conditions, scopes: [...out.scopes], resolved: out.resolved };
}

const pct = (x: number) => `${Math.round(x * 1000) / 10} %`;

/** "/" -> "root", "/var/lib/mysql" -> "var.lib.mysql" (then made a valid id part). */
export function mountPart(mount: string): string {
  return mount === "/" ? "root" : idPart(mount.replace(/^\/+|\/+$/g, "").replace(/\//g, "."));
}

export function hostRules(out: Collector, h: HostInput): void {
  const { disk, memory } = out.cfg;
  for (const fs of h.filesystems ?? []) {
    if (!Number.isFinite(fs.usedRatio)) continue;
    const id = alarmId("disk-full", h.node, mountPart(fs.mount));
    out.judged(id);
    const l = levelUp(fs.usedRatio, [[disk.warnRatio, "minor", "warn_ratio"], [disk.critRatio, "major", "crit_ratio"]], disk.hysteresis, out.active(id));
    if (l) out.add({ id, scope: id, rule: "disk-full", severity: l[1], node: h.node, text: `${h.node} filesystem ${fs.mount} nearly full`, detail: `${pct(fs.usedRatio)} used` });
  }
  if (typeof h.memUsedRatio === "number" && memory.warnRatio !== null) {
    const id = alarmId("memory-high", h.node);
    out.judged(id);
    if (levelUp(h.memUsedRatio, [[memory.warnRatio, "minor", "warn_ratio"]], 0.02, out.active(id))) {
      out.add({ id, scope: id, rule: "memory-high", severity: "minor", node: h.node, text: `${h.node} memory nearly exhausted`, detail: `${pct(h.memUsedRatio)} used` });
    }
  }
  if (h.timeSync === "synced" || h.timeSync === "unsynced") {
    const id = alarmId("time-unsynced", h.node);
    out.judged(id);
    if (h.timeSync === "unsynced") {
      out.add({ id, scope: id, rule: "time-unsynced", severity: "minor", node: h.node, text: `${h.node} clock not synchronised`, detail: "chrony/timedatectl report no time source in sync" });
    }
  }
}

export function clusterRules(out: Collector, c: ClusterInput): void {
  if (!c.member) return;
  const alive = c.peers.filter((p) => p.alive).length + 1;
  const qid = alarmId("quorum-lost", c.node);
  out.judged(qid);
  if (!c.quorum) {
    out.add({ id: qid, scope: qid, rule: "quorum-lost", severity: "critical", node: c.node, text: `${c.node} lost quorum`, detail: `sees ${alive} of ${c.peers.length + 1} members` });
  }
  const { warnMs, critMs } = out.cfg.clockSkew;
  for (const p of c.peers) {
    const lid = alarmId("node-lost", p.name);
    out.judged(lid);
    if (!p.alive) out.add({ id: lid, scope: lid, rule: "node-lost", severity: "major", node: p.name, text: `${p.name} lost`, detail: `no heartbeat seen by ${c.node}` });
    if (!p.alive || p.skewMs === null || !Number.isFinite(p.skewMs)) continue;
    const [a, b] = [c.node, p.name].sort() as [string, string];
    const sid = alarmId("clock-skew", a, b);
    out.judged(sid);
    const abs = Math.abs(p.skewMs);
    const l = levelUp(abs, [[warnMs, "minor", "warn_ms"], [critMs, "major", "crit_ms"]], warnMs / 5, out.active(sid));
    if (l) {
      const dir = p.skewMs > 0 ? "ahead of" : "behind";
      out.add({ id: sid, scope: sid, rule: "clock-skew", severity: l[1], node: p.name, text: `clock skew between ${a} and ${b}`, detail: `${p.name} is ${Math.round(abs)} ms ${dir} ${c.node}` });
    }
  }
}

export function mysqlRules(out: Collector, node: string, m: MysqlInput): void {
  const down = alarmId("service-down", node, "mysql");
  out.judged(down);
  if (!m.up) {
    out.add({ id: down, scope: down, rule: "service-down", severity: "major", node, text: `${node} mysql down`, detail: m.lastError ?? undefined });
    return;
  }
  const diverged = alarmId("data-diverged", node, "mysql");
  out.judged(diverged);
  if (m.diverged) out.add({ id: diverged, scope: diverged, rule: "data-diverged", severity: "critical", node, text: `${node} mysql data differs from the primary's`, detail: `${m.diverged}; held out, needs re-cloning` });
  const broken = alarmId("replica-broken", node, "mysql");
  out.judged(broken);
  if (m.role === "replica" && (!m.ioRunning || !m.sqlRunning)) {
    const why = [!m.ioRunning && "IO thread stopped", !m.sqlRunning && "SQL thread stopped", m.lastError].filter(Boolean).join("; ");
    out.add({ id: broken, scope: broken, rule: "replica-broken", severity: "major", node, text: `${node} mysql replication broken`, detail: why });
  }
  const lag = alarmId("repl-lag", node, "mysql");
  if (m.role !== "replica") return out.judged(lag);
  if (m.lagSeconds === null) return; // unknown (threads stopped): held, the broken alarm speaks
  out.judged(lag);
  const { lagWarnS, lagCritS } = out.cfg.replication;
  const l = levelUp(m.lagSeconds, [[lagWarnS, "minor", "lag_warn_s"], [lagCritS, "major", "lag_crit_s"]], lagWarnS / 5, out.active(lag));
  // Seconds_Behind_Source (MySQL) / Seconds_Behind_Master (MariaDB)
  if (l) out.add({ id: lag, scope: lag, rule: "repl-lag", severity: l[1], node, text: `${node} mysql replication lagging`, detail: `${m.lagSeconds} s behind its source` });
}

export function redisRules(out: Collector, node: string, r: RedisInput): void {
  const down = alarmId("service-down", node, "redis");
  out.judged(down);
  if (!r.up) {
    out.add({ id: down, scope: down, rule: "service-down", severity: "major", node, text: `${node} redis down` });
    return;
  }
  const broken = alarmId("replica-broken", node, "redis");
  out.judged(broken);
  // INFO replication master_link_status:down
  if (r.role === "replica" && !r.linkUp) {
    out.add({ id: broken, scope: broken, rule: "replica-broken", severity: "major", node, text: `${node} redis replication broken`, detail: `link to master${r.source ? ` ${r.source}` : ""} down` });
  }
}

/**
 * "Writes are down" (issue 17 item 2, issue 20 item 3): a service without a writable primary
 * that clients can reach for longer than ha.writes_down_alarm_ms. CRITICAL: it names the
 * service, why, since when, and the command that would let bollard act. Judged on every node
 * (a node that does not lead clears its own); raised by the acting leader alone.
 */
export function writesDownRules(out: Collector, node: string, w: WritesDownInput): void {
  for (const svc of w.services) {
    const id = alarmId("writes-down", svc);
    out.judged(id);
    const d = w.leading ? w.down.find((x) => x.svc === svc) : undefined;
    if (!d) continue;
    const since = new Date(d.since).toISOString().slice(11, 19);
    out.add({
      id, scope: id, rule: "writes-down", severity: "critical", node,
      text: `${svc}: writes are down`,
      detail: `no writable primary clients can reach since ${since} UTC (${Math.round(d.forMs / 1000)} s): ${d.why}${d.command ? `; to let bollard act: ${d.command}` : "; bollard is acting on it"}`,
    });
  }
}

export function eventRules(out: Collector, e: EventInput): void {
  switch (e.kind) {
    case "fence-failed": {
      const id = alarmId("fence-failed", e.target);
      out.add({ id, scope: id, rule: "fence-failed", severity: "critical", node: e.target, text: `fencing ${e.target} failed`, detail: e.detail, hold: "ack" });
      return;
    }
    case "fence-done":
      out.resolved.push(alarmId("fence-failed", e.target));
      return;
    case "failover-done": {
      const id = alarmId("failover-done", e.service);
      const text = `${e.service} failed over${e.from ? ` from ${e.from}` : ""} to ${e.to}`;
      out.add({ id, scope: id, rule: "failover-done", severity: "info", node: e.to, text, detail: `in ${(e.ms / 1000).toFixed(1)} s`, hold: out.cfg.eventHoldMs });
      return;
    }
    case "upgrade-failed": {
      // one per cluster: held until acknowledged, or until a later rollout completes
      const id = alarmId("upgrade-failed");
      out.add({ id, scope: id, rule: "upgrade-failed", severity: "major", node: e.target, text: `upgrade stopped: ${e.target} failed its health gate`, detail: e.detail, hold: "ack" });
      return;
    }
    case "upgrade-done":
      out.resolved.push(alarmId("upgrade-failed"));
      return;
  }
}
