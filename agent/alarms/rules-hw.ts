// Hardware alarm rules: BMC sensors (temperature, fan, PSU, other thresholds), the SEL,
// BMC and switch reachability, switch ports and the node's bond. Pure; see rules.ts.
import { levelDown, levelUp, type Collector, type Level } from "./collector.ts";
import { alarmId, type BmcInput, type BondInput, type SelInput, type SensorInput, type SwitchInput } from "./types.ts";

const THRESHOLD_NAME: Record<string, string> = {
  unc: "upper non-critical",
  ucr: "upper critical",
  unr: "upper non-recoverable",
  lnc: "lower non-critical",
  lcr: "lower critical",
  lnr: "lower non-recoverable",
};
const thrName = (n: string) => THRESHOLD_NAME[n] ?? n;

export type SensorKind = "temperature" | "fan" | "psu" | "other" | "ignored";

/** What a sensor measures, from its unit and name (ipmitool `sensor` / `sdr elist`). */
export function sensorKind(s: SensorInput): SensorKind {
  if (/degrees C|°C|celsius/i.test(s.unit)) return "temperature";
  if (/\bRPM\b/i.test(s.unit)) return "fan";
  const discrete = s.discrete ?? s.unit === "discrete";
  if (discrete) return /\bPSU|\bPS\s?\d|power supply/i.test(s.name) || /power supply/i.test(s.states ?? "") ? "psu" : "ignored";
  return "other";
}

/** "CPU Temp" stays; "Inlet" becomes "temperature Inlet" so the text names what it is. */
const label = (name: string, word: RegExp, prefix: string) => (word.test(name) ? name : `${prefix} ${name}`);

export function bmcRules(out: Collector, b: BmcInput): void {
  const id = alarmId("bmc-unreachable", b.node);
  out.judged(id);
  if (!b.reachable) {
    out.add({ id, scope: id, rule: "bmc-unreachable", severity: "major", node: b.node, text: `${b.node} BMC unreachable`, detail: b.error });
    return;
  }
  const ignore = new Set(out.cfg.ignoreSensors);
  for (const s of b.sensors ?? []) if (!ignore.has(s.name)) sensorRules(out, b.node, s);
  selRules(out, b.node, b.sel ?? []);
}

function fallback(s: SensorInput): Level | null {
  if (s.severity === "critical") return [0, "major", `status ${s.status ?? "critical"}`];
  if (s.severity === "warning") return [0, "minor", `status ${s.status ?? "warning"}`];
  return null;
}

export function sensorRules(out: Collector, node: string, s: SensorInput): void {
  const kind = sensorKind(s);
  const t = s.thresholds ?? {};
  const unit = s.unit;
  if (kind === "ignored") return;
  if (kind === "psu") return psuRule(out, node, s);
  if (s.value === null || !Number.isFinite(s.value) || s.severity === "unknown") return; // no reading: held
  const v = s.value;
  if (kind === "temperature") {
    const id = alarmId("temperature", node, s.name);
    out.judged(id);
    const cfg = out.cfg.temperature;
    const levels: Level[] =
      cfg.warnC !== null || cfg.critC !== null
        ? [[cfg.warnC, "minor", "warn_c"], [cfg.critC, "major", "crit_c"], [t.unr, "critical", "unr"]]
        : [[t.unc, "minor", "unc"], [t.ucr, "major", "ucr"], [t.unr, "critical", "unr"]];
    const known = levels.some((l) => typeof l[0] === "number");
    const l = known ? levelUp(v, levels, cfg.hysteresisC, out.active(id)) : fallback(s);
    if (l) {
      const detail = known ? `${v} ${unit} >= ${thrName(l[2])} ${l[0]}` : `${v} ${unit}, ${l[2]}`;
      out.add({ id, scope: id, rule: "temperature", severity: l[1], node, text: `${node} ${label(s.name, /temp/i, "temperature")} over threshold`, detail });
    }
    return;
  }
  if (kind === "fan") {
    const id = alarmId("fan", node, s.name);
    out.judged(id);
    const name = label(s.name, /fan/i, "fan");
    if (v <= 0) {
      out.add({ id, scope: id, rule: "fan", severity: "major", node, text: `${node} ${name} stopped`, detail: `${v} ${unit}` });
      return;
    }
    const cfg = out.cfg.fan;
    const levels: Level[] = cfg.minRpm !== null ? [[cfg.minRpm, "major", "min_rpm"]] : [[t.lnc, "minor", "lnc"], [t.lcr, "major", "lcr"], [t.lnr, "critical", "lnr"]];
    const known = levels.some((l) => typeof l[0] === "number");
    const l = known ? levelDown(v, levels, cfg.hysteresisRpm, out.active(id)) : fallback(s);
    if (l) {
      const detail = known ? `${v} ${unit} <= ${thrName(l[2])} ${l[0]}` : `${v} ${unit}, ${l[2]}`;
      out.add({ id, scope: id, rule: "fan", severity: l[1], node, text: `${node} ${name} below threshold`, detail });
    }
    return;
  }
  const id = alarmId("sensor", node, s.name);
  out.judged(id);
  const l = fallback(s);
  if (l) out.add({ id, scope: id, rule: "sensor", severity: l[1], node, text: `${node} sensor ${s.name} out of range`, detail: `${v} ${unit}, ${l[2]}` });
}

/** Power supply sensor type 08h offsets (IPMI 2.0 table 42-3): 1 failure detected,
 * 2 predictive failure, 3 input lost (AC/DC), 4 input lost or out of range. */
function psuRule(out: Collector, node: string, s: SensorInput): void {
  const id = alarmId("psu", node, s.name);
  const off = new Set(s.offsets ?? []);
  const st = s.states ?? "";
  const known = s.offsets !== undefined || s.states !== undefined || (s.severity !== undefined && s.severity !== "unknown");
  if (!known) return;
  out.judged(id);
  const name = label(s.name.replace(/\s+status$/i, ""), /\bPSU|\bPS\s?\d|power supply/i, "PSU");
  let what: string | null = null;
  let severity: "major" | "minor" = "major";
  if (off.has(1) || /failure detected/i.test(st)) what = "failed";
  else if (off.has(3) || off.has(4) || /AC lost|input lost|out of range|out-of-range/i.test(st)) what = "input lost";
  else if (off.has(2) || /predictive/i.test(st)) (what = "predictive failure"), (severity = "minor");
  else if (s.severity === "critical" && s.offsets === undefined && s.states === undefined) what = "failed";
  if (what) out.add({ id, scope: id, rule: "psu", severity, node, text: `${node} ${name} ${what}`, detail: st || (s.offsets ? `offsets ${s.offsets.join(",")}` : s.status) });
}

/** New SEL records become info event alarms (held for event_hold_ms), at most max_per_poll. */
export function selRules(out: Collector, node: string, entries: SelInput[]): void {
  const max = out.cfg.sel.maxPerPoll;
  const hold = out.cfg.eventHoldMs;
  for (const e of entries.slice(0, max)) {
    const hex = e.id.toString(16);
    const id = alarmId("sel", node, hex);
    const text = `${node} SEL ${hex}: ${e.sensor} ${e.event}${e.direction === "deasserted" ? " (deasserted)" : ""}`;
    out.add({ id, scope: id, rule: "sel", severity: "info", node, text, detail: e.detail, hold });
  }
  if (entries.length > max) {
    const id = alarmId("sel", node, "more");
    out.add({ id, scope: id, rule: "sel", severity: "info", node, text: `${node} SEL: more new entries than shown`, detail: `${entries.length - max} more in one poll`, hold });
  }
}

const portName = (sw: string, port: string, node?: string | null, nic?: string | null) =>
  `${sw} port ${port}${node ? ` to ${node}${nic ? ` ${nic}` : ""}` : ""}`;

export function switchRules(out: Collector, s: SwitchInput): void {
  const sid = alarmId("switch-unreachable", s.switch);
  out.judged(sid);
  if (!s.reachable) {
    out.add({ id: sid, scope: sid, rule: "switch-unreachable", severity: "major", node: s.switch, text: `${s.switch} unreachable`, detail: s.error });
    return;
  }
  for (const p of s.ports ?? []) {
    if (!p.node && !out.cfg.ports.unmapped) continue;
    if (p.oper === null || p.admin === null) continue;
    const scope = alarmId("port-down", s.switch, p.port);
    const dis = alarmId("port-disabled", s.switch, p.port);
    out.judged(scope);
    out.judged(dis);
    const name = portName(s.switch, p.port, p.node, p.nic);
    const node = p.node ?? s.switch;
    // IF-MIB ifAdminStatus(7) down: shut on purpose (a fence, an operator), not a fault
    if (p.admin === "down") {
      out.add({ id: dis, scope: dis, rule: "port-disabled", severity: "minor", node, text: `${name} disabled`, detail: "ifAdminStatus down" });
    } else if (p.admin === "up" && p.oper !== "up") {
      // IF-MIB ifOperStatus(8) not up while admin up
      out.add({ id: scope, scope, rule: "port-down", severity: "major", node, text: `${name} down`, detail: `ifOperStatus ${p.oper}` });
    }
  }
}

export function bondRules(out: Collector, b: BondInput, switches: SwitchInput[]): void {
  const id = alarmId("bond-degraded", b.node, b.bond);
  out.judged(id);
  const down = b.slaves.filter((s) => s.mii !== "up");
  if (down.length === 0 || b.slaves.length === 0) return;
  const where = (nic: string, given?: string | null) =>
    given ?? switches.find((sw) => (sw.ports ?? []).some((p) => p.node === b.node && p.nic === nic))?.switch ?? null;
  const list = down.map((s) => {
    const sw = where(s.name, s.switch);
    return sw ? `${s.name} (${sw})` : s.name;
  });
  const all = down.length === b.slaves.length;
  const detail = [b.mode && `mode ${b.mode}`, `active ${b.activeSlave ?? "none"}`, ...b.slaves.map((s) => `${s.name} failures ${s.linkFailures ?? "?"}`)]
    .filter(Boolean)
    .join(", ");
  out.add({
    id,
    scope: id,
    rule: "bond-degraded",
    severity: all ? "critical" : "major",
    node: b.node,
    text: `${b.node} ${b.bond} ${all ? "down" : "degraded"}: ${list.join(", ")} down`,
    detail,
  });
}
