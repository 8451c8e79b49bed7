// Fencing a lost node (DESIGN §5, issue 4 item 5): nothing is promoted while its old holder
// might still be writing. The levels, tried in order, each attempt an event with its proof:
//   1 ipmi          `chassis power off`, confirmed by `chassis power status` = off   (ipmi.ts)
//   2 switch-ports  ifAdminStatus down on the node's ports on both switches, read back (ports.ts)
//   3 deadline      wait until the node has certainly fenced itself                   (deadline.ts)
// fenceNode stops at the first confirmed level. Level 3 is confirmed by construction once
// its wait completes; it fails only when aborted. unfence (power on, ports up, each read
// back) is an explicit operator step, never automatic.
//
//   const r = await fenceNode({ node: "node2", config, lastContactMs }, {
//     deps: realFenceDeps(log), timing: { quorumLossMs: 3000, watchdogMs: 10000 }, onProof: (p) => events.push(p) });
//   if (r.fenced) promote();
import type { Logger } from "../env/env.ts";
import { type BmcConfig, Ipmi } from "../hw/ipmi.ts";
import { type SwitchConfig, SnmpSwitch } from "../hw/snmp.ts";
import type { FenceProof } from "../resources/types.ts";
import { type DeadlineTiming, waitSelfFenceDeadline } from "./deadline.ts";
import { type Clock, fenceByIpmi, type PowerControl, setPowerConfirmed } from "./ipmi.ts";
import { fenceByPorts, type PortControl, type PortRef, setPortsConfirmed } from "./ports.ts";

export type { BmcConfig, Clock, DeadlineTiming, PortControl, PowerControl, SwitchConfig };

/** One cable of the node: the switch, and the port's ifDescr on it. */
export interface SwitchPort {
  switch: SwitchConfig;
  port: string;
}

/** How to fence one node: its BMC and its ports on both switches. */
export interface NodeFenceConfig {
  bmc?: BmcConfig;
  switchPorts: SwitchPort[];
}

export interface FenceTarget {
  node: string;
  config: NodeFenceConfig;
  /** monotonic ms (deps.clock) of the last message heard from the node; for level 3 */
  lastContactMs: number;
}

/** The I/O fencing needs, injected: real adapters in the agent, fakes in tests. */
export interface FenceDeps {
  power(bmc: BmcConfig): PowerControl;
  ports(sw: SwitchConfig): PortControl;
  clock: Clock;
  log: Logger;
}

export type FenceLevel = FenceProof["level"];

export interface FenceOptions {
  deps: FenceDeps;
  timing: DeadlineTiming;
  /** every attempt's proof, as it happens (the HA event log) */
  onProof?: (p: FenceProof) => void;
  /** the levels to try, in order; default all three */
  levels?: FenceLevel[];
  /** level 1: how long to poll power status after power off; default 3000 ms */
  ipmiConfirmMs?: number;
  ipmiPollMs?: number;
  /** stops the attempt (the node is heard again, or this node no longer leads): no further
   *  level is tried and no IPMI command is sent once it is aborted; a level 3 wait ends */
  signal?: AbortSignal;
}

export interface FenceResult {
  fenced: boolean;
  /** the confirmed level, null when none was */
  level: FenceLevel | null;
  proofs: FenceProof[];
}

const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms))),
};

/** The real adapters: ipmitool for BMCs, net-snmp for switches. */
export function realFenceDeps(log: Logger, clock: Clock = realClock): FenceDeps {
  return {
    power: (bmc) => new Ipmi(bmc, { log: log.child("hw.ipmi"), now: () => clock.now() }),
    ports: (sw) => new SnmpSwitch(sw, { log: log.child("hw.snmp"), now: () => clock.now() }),
    clock,
    log,
  };
}

/** One PortControl per switch (by name), shared by that switch's ports. */
function portRefs(cfg: NodeFenceConfig, deps: FenceDeps): { refs: PortRef[]; close(): void } {
  const controls = new Map<string, PortControl>();
  const refs = cfg.switchPorts.map((sp) => {
    let c = controls.get(sp.switch.name);
    if (!c) controls.set(sp.switch.name, (c = deps.ports(sp.switch)));
    return { switchName: sp.switch.name, port: sp.port, control: c };
  });
  return { refs, close: () => { for (const c of controls.values()) c.close?.(); } };
}

/** Tries the levels in order; stops at the first confirmed one. Never throws. */
export async function fenceNode(target: FenceTarget, opts: FenceOptions): Promise<FenceResult> {
  const { deps } = opts;
  const log = deps.log.child("fence");
  const proofs: FenceProof[] = [];
  const record = (p: FenceProof) => {
    proofs.push(p);
    (p.ok ? log.info : log.warn).call(log, `fence ${target.node} level ${p.level}: ${p.ok ? "confirmed" : "not confirmed"}`, {
      node: target.node, level: p.level, ok: p.ok, detail: p.detail, ms: p.ms,
    });
    try { opts.onProof?.(p); } catch (e) { log.error("onProof failed", { error: (e as Error).message }); }
  };
  for (const level of opts.levels ?? (["ipmi", "switch-ports", "deadline"] as FenceLevel[])) {
    if (opts.signal?.aborted) {
      // An abandoned failover must not go on cutting a node off: in the lab, an abandoned
      // fence went on to shut a live node's ports and the cluster lost its majority.
      record({ level, ok: false, detail: `not tried: fencing ${target.node} was called off (${reason(opts.signal)})`, ms: 0 });
      return { fenced: false, level: null, proofs };
    }
    let p: FenceProof;
    try {
      p = await attempt(level, target, opts);
    } catch (e) { // an adapter broke its no-throw contract: still an unconfirmed attempt
      p = { level, ok: false, detail: `${level}: ${(e as Error).message}: not confirmed`, ms: 0 };
    }
    record(p);
    if (p.ok) return { fenced: true, level, proofs };
  }
  log.error(`fence ${target.node}: no level confirmed`, { node: target.node });
  return { fenced: false, level: null, proofs };
}

function reason(signal: AbortSignal): string {
  const r: unknown = signal.reason;
  return r instanceof Error ? r.message : typeof r === "string" ? r : "aborted";
}

async function attempt(level: FenceLevel, target: FenceTarget, opts: FenceOptions): Promise<FenceProof> {
  const { deps } = opts;
  const cfg = target.config;
  switch (level) {
    case "ipmi":
      if (!cfg.bmc) return { level, ok: false, detail: `no BMC configured for ${target.node}: skipped`, ms: 0 };
      return fenceByIpmi(deps.power(cfg.bmc), { clock: deps.clock, confirmMs: opts.ipmiConfirmMs, pollMs: opts.ipmiPollMs, signal: opts.signal });
    case "switch-ports": {
      if (!cfg.switchPorts.length) return { level, ok: false, detail: `no switch ports configured for ${target.node}: skipped`, ms: 0 };
      const { refs, close } = portRefs(cfg, deps);
      try {
        return await fenceByPorts(refs, deps.clock);
      } finally {
        close();
      }
    }
    case "deadline":
      return waitSelfFenceDeadline({ ...opts.timing, lastContactMs: target.lastContactMs }, deps.clock, { signal: opts.signal });
  }
}

export interface UnfenceResult {
  ok: boolean;
  /** power on (level "ipmi") and ports up (level "switch-ports"), each with its read-back */
  proofs: FenceProof[];
}

/** The explicit way back: power on (confirmed by power status), then every port up (read back). */
export async function unfence(target: Omit<FenceTarget, "lastContactMs">, opts: Pick<FenceOptions, "deps" | "onProof" | "ipmiConfirmMs" | "ipmiPollMs">): Promise<UnfenceResult> {
  const { deps } = opts;
  const log = deps.log.child("fence");
  const proofs: FenceProof[] = [];
  const cfg = target.config;
  const steps: { level: FenceLevel; run: () => Promise<FenceProof> }[] = [];
  const bmc = cfg.bmc;
  if (bmc) {
    const o = { clock: deps.clock, confirmMs: opts.ipmiConfirmMs, pollMs: opts.ipmiPollMs };
    steps.push({ level: "ipmi", run: () => setPowerConfirmed(deps.power(bmc), "on", o) });
  }
  if (cfg.switchPorts.length) {
    steps.push({
      level: "switch-ports",
      run: async () => {
        const { refs, close } = portRefs(cfg, deps);
        try {
          return await setPortsConfirmed(refs, "up", deps.clock);
        } finally {
          close();
        }
      },
    });
  }
  for (const step of steps) {
    let p: FenceProof;
    try {
      p = await step.run();
    } catch (e) {
      p = { level: step.level, ok: false, detail: (e as Error).message, ms: 0 };
    }
    proofs.push(p);
    (p.ok ? log.info : log.warn).call(log, `unfence ${target.node} ${p.level}: ${p.ok ? "done" : "failed"}`, { node: target.node, detail: p.detail, ms: p.ms });
    try { opts.onProof?.(p); } catch (e) { log.error("onProof failed", { error: (e as Error).message }); }
  }
  return { ok: proofs.every((p) => p.ok), proofs };
}
