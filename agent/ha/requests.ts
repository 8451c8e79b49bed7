// The operator's requests on the data path as commands (flags.ts says what each flag means):
// one place that turns "switch over mysql" or "maintenance on for node2" into the `apply`
// command the leader commits, so that `bollard switchover|maintenance|ha|rejoin`
// (cli/ha-cmd.ts) and the web console's actions (web/api.ts) send the very same thing.
import type { Command } from "../bus/messages.ts";
import type { Svc } from "./flags.ts";

const cut = (s: string) => s.slice(0, 200);

export const requests = {
  switchover: (svc: Svc, to: string | null, why = `operator switchover of ${svc}`): Command => ({ op: "apply", why: cut(why), flags: { [`switchover:${svc}`]: to ?? "any" } }),
  failover: (svc: Svc, to: string | null, why = `operator failover of ${svc}`): Command => ({ op: "apply", why: cut(why), flags: { [`failover-to:${svc}`]: to ?? "any" } }),
  maintenance: (node: string, on: boolean, why = `maintenance ${on ? "on" : "off"} for ${node}`): Command => ({ op: "apply", why: cut(why), flags: { [`maint:${node}`]: on ? "on" : null } }),
  disarm: (why = "HA disarmed by an operator"): Command => ({ op: "apply", why: cut(why), flags: { ha: "disarmed" } }),
  arm: (why = "HA armed by an operator"): Command => ({ op: "apply", why: cut(why), flags: { ha: null } }),
  ack: (svc: Svc, wallNow: number, why = `failover of ${svc} acknowledged`): Command => ({ op: "apply", why: cut(why), flags: { [`ack:${svc}`]: String(wallNow) } }),
  rejoin: (node: string, why = `operator asks to rejoin ${node}`): Command => ({ op: "apply", why: cut(why), flags: { [`rejoin:${node}`]: "requested" } }),
  /** `bollard vm start|stop|restart|migrate` (vm-flags.ts): `wallNow` stamps a start or restart */
  vm: (op: VmOp, vm: string, wallNow: number, to: string | null = null, why = `operator: vm ${op} ${vm}${to ? ` --to ${to}` : ""}`): Command => ({
    op: "apply",
    why: cut(why),
    flags:
      op === "start" ? { [`vm-stop:${vm}`]: null, [`vm-start:${vm}`]: String(wallNow), [`vm-hold:${vm}`]: null }
      : op === "stop" ? { [`vm-stop:${vm}`]: "operator" }
      : op === "restart" ? { [`vm-restart:${vm}`]: String(wallNow), [`vm-stop:${vm}`]: null }
      : { [`vm-mig:${vm}`]: to ?? "any" },
  }),
};

export const VM_OPS = ["start", "stop", "restart", "migrate"] as const;
export type VmOp = (typeof VM_OPS)[number];
