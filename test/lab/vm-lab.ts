// Helpers of the VM lab test and make bench-vm: each node's VM snapshot from its control socket
// (GET /vms), the rows `bollard vm list` prints, the guests' serial logs (what each acknowledged)
// and the agents' events. The lab runs with LAB_VMS=1 (test/lab/gen-vm.sh).
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { vmRows, type VmRow, type VmSnapshot } from "../../agent/console/screens-vms.ts";
import type { AlarmRow } from "../../agent/console/model.ts";
import { diskCounter, lastAck, parseSerial, readSerial, type SerialView } from "./guest/guest.ts";
import { NODES, S, events } from "./ha-lab.ts";

function get<T>(node: string, path: string, timeoutMs = 2000): Promise<T | null> {
  return new Promise((resolve) => {
    const req = request({ socketPath: join(S, node, "state", "agent.sock"), path, method: "GET", timeout: timeoutMs }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => { try { resolve(res.statusCode === 200 ? (JSON.parse(body) as T) : null); } catch { resolve(null); } });
      res.on("error", () => resolve(null));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(null));
    req.end();
  });
}

export const vmSnapshot = (node: string) => get<VmSnapshot>(node, "/vms");
export const alarmsOf = async (node: string) => (await get<{ active: AlarmRow[] }>(node, "/alarms"))?.active ?? [];
/** An alarm active or recently cleared on `node` (GET /alarms?all=1): one raised and cleared between two polls counts. */
export const alarmSeen = async (node: string, id: string) => {
  const r = await get<{ active: AlarmRow[]; cleared?: AlarmRow[] }>(node, "/alarms?all=1");
  return [...(r?.active ?? []), ...(r?.cleared ?? [])].find((a) => a.id === id) ?? null;
};

/** The leader's snapshot (it holds the register as committed), or null. */
export async function leaderView(): Promise<{ node: string; s: VmSnapshot } | null> {
  for (const n of NODES) {
    const s = await vmSnapshot(n);
    if (s?.leader) return { node: n, s };
  }
  return null;
}

/** `bollard vm list` rows as the leader sees them, with the cluster-wide alarms. */
export async function rows(): Promise<VmRow[] | null> {
  const l = await leaderView();
  if (!l) return null;
  return vmRows(l.s, await alarmsOf(l.node));
}

export const row = async (vm: string) => (await rows())?.find((r) => r.name === vm) ?? null;

/** The guest's serial log on `node` (QEMU appends to it run after run), from byte `from` on. */
export function serialOf(node: string, vm: string, from = 0): SerialView {
  return readSerial(join(S, node, "vms", vm, "serial.log"), from);
}

/** How long the serial log of `vm` on `node` is now: a mark for serialOf(node, vm, mark). */
export function serialMark(node: string, vm: string): number {
  const f = join(S, node, "vms", vm, "serial.log");
  return existsSync(f) ? statSync(f).size : 0;
}

/**
 * The guest's counter across a live migration from `src` to `dst`: the acks printed on the
 * source after `srcMark` and then on the destination after `dstMark`, as one stream (a line
 * the source began may end on the destination). Empty when either side printed none.
 */
export function acksAcross(vm: string, src: string, srcMark: number, dst: string, dstMark: number): { acks: number[]; onSrc: number; onDst: number } {
  const a = serialOf(src, vm, srcMark).text;
  const b = serialOf(dst, vm, dstMark).text;
  const all = parseSerial(a + b).acks;
  return { acks: all, onSrc: parseSerial(a).acks.length, onDst: all.length - parseSerial(a).acks.length };
}

/** What is wrong with a counter stream (a gap or a repeat), or null when each value is the last + 1. */
export function gapIn(acks: number[]): string | null {
  for (let i = 1; i < acks.length; i++) if (acks[i] !== acks[i - 1]! + 1) return `${acks[i - 1]} then ${acks[i]}`;
  return null;
}

/** Every node's agent events since `sinceIso`, merged in time order, as "HH:MM:SS.mmm node kind detail". */
export function timeline(sinceIso: string): string[] {
  return NODES.flatMap((n) => events(n).filter((e) => e.ts >= sinceIso).map((e) => ({ ...e, n })))
    .sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0))
    .map((e) => `${e.ts.slice(11, 23)} ${e.n} ${e.kind} ${e.detail}`);
}

/** The wall ms of the first event since `sinceIso` (any node) whose "kind detail" matches. */
export function eventAt(sinceIso: string, re: RegExp): number | null {
  let best: number | null = null;
  for (const n of NODES) for (const e of events(n)) if (e.ts >= sinceIso && re.test(`${e.kind} ${e.detail}`)) { const t = Date.parse(e.ts); if (best === null || t < best) best = t; }
  return best;
}

/** How many times the guest of `vm` booted on `node` (its serial log's init lines). */
export function boots(node: string, vm: string): number {
  return (serialOf(node, vm).text.match(/bollard-guest: init/g) ?? []).length;
}

/**
 * Resolves with the wall ms at which the guest of `vm` on one of `nodes` first printed an "ack"
 * in a boot after the ones counted in `before` (node -> boots), polled every 20 ms; null after
 * `limitMs`. Also says on which node, and when that boot began: the wall ms its init line
 * appeared less the guest's uptime it printed there (the kernel's own boot), so that
 * ackAt - bootAt is the part the guest's boot takes. Poll several VMs at once (Promise.all).
 */
export async function firstAck(vm: string, nodes: readonly string[], before: Record<string, number>, limitMs: number): Promise<{ node: string; ackAt: number; bootAt: number } | null> {
  const end = Date.now() + limitMs;
  const bootAt = new Map<string, number>();
  while (Date.now() < end) {
    for (const n of nodes) {
      const text = serialOf(n, vm).text;
      const parts = text.split("bollard-guest: init");
      if (parts.length - 1 <= (before[n] ?? 0)) continue;
      const last = parts[parts.length - 1]!;
      if (!bootAt.has(n)) {
        const up = /^ at ([\d.]+)s/.exec(last);
        if (up) bootAt.set(n, Date.now() - Math.round(Number(up[1]) * 1000));
      }
      if (/(?:^|\n)ack \d+\r?\n/.test(last)) return { node: n, ackAt: Date.now(), bootAt: bootAt.get(n) ?? Date.now() };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

/** The lab's QEMU processes (not the storage daemons): pid, node and VM, from /proc. */
export function qemuProcs(): { pid: number; node: string; vm: string }[] {
  const out: { pid: number; node: string; vm: string }[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    let argv: string[];
    try { argv = readFileSync(`/proc/${p}/cmdline`, "latin1").split("\0"); } catch { continue; }
    if (!/qemu-system/.test(argv[0] ?? "")) continue;
    const pidfile = argv[argv.indexOf("-pidfile") + 1] ?? "";
    const m = new RegExp(`^${S.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}/([^/]+)/vms/([^/]+)/qemu\\.pid$`).exec(pidfile);
    if (m) out.push({ pid: Number(p), node: m[1]!, vm: m[2]! });
  }
  return out;
}

const diskOf = (node: string, vm: string) => join(S, node, "vms", vm, `${vm}-d.raw`);

/**
 * What is wrong after a case, or [] when all is well: each VM the leader says runs has exactly
 * one QEMU, on its node, and no other VM has one; each VM with a replica in sync has its data
 * there too: a writer's replica (and its own disk) hold at least the last write its guest printed
 * as acknowledged (read first), an idle guest's replica is byte for byte its disk.
 */
export async function checkConsistent(writers: readonly string[]): Promise<string[]> {
  const rs = await rows();
  if (!rs) return ["no leader answers"];
  const procs = qemuProcs();
  const bad: string[] = [];
  for (const r of rs) {
    const mine = procs.filter((p) => p.vm === r.name);
    const want = r.state === "running" && r.node ? [r.node] : [];
    const got = mine.map((p) => p.node).sort();
    if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`${r.name} (${r.state} on ${r.node ?? "-"}): QEMU on [${got.join(", ")}]`);
    if (r.state !== "running" || !r.node || !r.replica || !r.inSync) continue;
    if (writers.includes(r.name)) {
      const acked = lastAck(serialOf(r.node, r.name));
      for (const n of [r.node, r.replica]) {
        const on = diskCounter(diskOf(n, r.name));
        if (on < acked) bad.push(`${r.name}: its disk on ${n} holds ${on}, the guest had ${acked} acknowledged`);
      }
    } else {
      const a = readFileSync(diskOf(r.node, r.name));
      const b = readFileSync(diskOf(r.replica, r.name));
      if (!a.equals(b)) bad.push(`${r.name}: its disk on ${r.node} and its replica on ${r.replica} differ`);
    }
  }
  return bad;
}
