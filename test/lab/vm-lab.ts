// Helpers of the VM lab test and make bench-vm: each node's VM snapshot from its control socket
// (GET /vms), the rows `bollard vm list` prints, the guests' serial logs (what each acknowledged)
// and the agents' events. The lab runs with LAB_VMS=1 (test/lab/gen-vm.sh).
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { vmRows, type VmRow, type VmSnapshot } from "../../agent/console/screens-vms.ts";
import type { AlarmRow } from "../../agent/console/model.ts";
import { readSerial, type SerialView } from "./guest/guest.ts";
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

export function serialOf(node: string, vm: string): SerialView {
  return readSerial(join(S, node, "vms", vm, "serial.log"));
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
 * `limitMs`. Also says which node and when (wall ms) that boot's init line appeared.
 */
export async function firstAck(vm: string, nodes: readonly string[], before: Record<string, number>, limitMs: number): Promise<{ node: string; ackAt: number; initAt: number } | null> {
  const end = Date.now() + limitMs;
  const initAt = new Map<string, number>();
  while (Date.now() < end) {
    for (const n of nodes) {
      const text = serialOf(n, vm).text;
      const parts = text.split("bollard-guest: init");
      if (parts.length - 1 <= (before[n] ?? 0)) continue;
      if (!initAt.has(n)) initAt.set(n, Date.now());
      if (/(?:^|\n)ack \d+/.test(parts[parts.length - 1]!)) return { node: n, ackAt: Date.now(), initAt: initAt.get(n)! };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}
