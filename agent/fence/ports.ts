// Fence level 2 (DESIGN §5): shut the node's ports on both switches over SNMP, IF-MIB
// ifAdminStatus (1.3.6.1.2.1.2.2.1.7) = down(2), each confirmed by reading it back. The
// level is confirmed only when every configured port of the node reads back down: one link
// left up on either switch and the node can still reach clients and replicas.
// Ports that did go down stay down when another fails (the safe side); unfence brings them up.
// Also brings ports up (read back) for unfencing.
import type { AdminStatus, Result } from "../hw/snmp.ts";
import type { FenceProof } from "../resources/types.ts";
import type { Clock } from "./ipmi.ts";

/** What level 2 needs from a switch; hw/snmp.ts's SnmpSwitch is one. */
export interface PortControl {
  /** "switchA 127.0.5.10:1161", for the proof text */
  readonly target: string;
  /** the ifIndex of a port by its ifDescr (ifName as a fallback) */
  ifIndexOf(port: string): Promise<Result<number>>;
  /** SET ifAdminStatus then GET it: ok only when it reads back as set */
  setAdminStatus(ifIndex: number, status: "up" | "down"): Promise<Result<AdminStatus>>;
  close?(): void;
}

export interface PortRef {
  /** the switch's name, e.g. "switchA" */
  switchName: string;
  /** the port's ifDescr on that switch, e.g. "swp3" */
  port: string;
  control: PortControl;
}

async function one(ref: PortRef, want: "up" | "down"): Promise<{ ok: boolean; text: string }> {
  const where = `${ref.switchName} port ${ref.port}`;
  const idx = await ref.control.ifIndexOf(ref.port);
  if (!idx.ok) return { ok: false, text: `${where}: ${idx.error}` };
  const set = await ref.control.setAdminStatus(idx.value, want);
  if (!set.ok) return { ok: false, text: `${where} (ifIndex ${idx.value}): ${set.error}` };
  return { ok: true, text: `ifAdminStatus ${want} read back on ${where} (ifIndex ${idx.value})` };
}

/**
 * Sets every port's ifAdminStatus to `want` (all switches in parallel, each switch's ports in
 * order) and reads each back. ok only when every port read back `want`.
 */
export async function setPortsConfirmed(refs: PortRef[], want: "up" | "down", clock: Clock): Promise<FenceProof> {
  const t0 = clock.now();
  const proof = (ok: boolean, detail: string): FenceProof => ({ level: "switch-ports", ok, detail, ms: Math.round(clock.now() - t0) });
  if (!refs.length) return proof(false, "no switch ports configured: not confirmed");
  const bySwitch = new Map<string, PortRef[]>();
  for (const r of refs) bySwitch.set(r.switchName, [...(bySwitch.get(r.switchName) ?? []), r]);
  const results = await Promise.all(
    [...bySwitch.values()].map(async (list) => {
      const out: { ok: boolean; text: string }[] = [];
      for (const r of list) out.push(await one(r, want));
      return out;
    }),
  );
  const all = results.flat();
  const ok = all.every((r) => r.ok);
  return proof(ok, `${all.map((r) => r.text).join("; ")}${ok ? "" : ": not confirmed"}`);
}

/** Level 2: every port of the node down, read back on each switch. */
export function fenceByPorts(refs: PortRef[], clock: Clock): Promise<FenceProof> {
  return setPortsConfirmed(refs, "down", clock);
}
