// The VMs' bookkeeping in the config register (DESIGN §4, §5b), so that a new leader resumes
// from it and every node's local VM manager acts on the same committed decisions:
//   assignments vm:<vm>   the node that runs it (or should): it holds the latest copy of its disks
//   vm-replica:<vm>       the node its disks are mirrored to (syncing or in sync)
//   vm-synced:<vm>        that node, once every disk is in write-blocking sync: the only node a
//                         lost VM may be restarted on. Removed (the replica "outdated") before the
//                         holder lets guest writes go on without it
//   vm-hold:<vm>          a node that must not run it: the first half of moving it away from a
//                         live node; the move is committed once that node reports it stopped
//   vm-mig:<vm>           a live migration is asked for: the target node, or "any"
//   vm-stop:<vm>          "operator": stopped by `bollard vm stop`, not started again by anyone
//   vm-start:<vm>         wall ms of the last `bollard vm start`: forgets failures, acknowledges
//                         anti-flapping
//   vm-restart:<vm>       wall ms of `bollard vm restart`: an instance started before it is stopped
//   vm-moved:<vm>         wall ms of its last automatic restart on another node (anti-flapping)
// The node-level flags it reads are the data path's (ha/flags.ts): fencing:/fenced:<node>,
// maint:<node>, ha (disarmed).
import type { ClusterConfig } from "../bus/messages.ts";

type Flags = ClusterConfig["flags"];

export const vmKey = (vm: string) => `vm:${vm}`;
export const holderOf = (c: ClusterConfig, vm: string): string | null => c.assignments[vmKey(vm)] ?? null;
export const replicaOf = (f: Flags, vm: string): string | null => f[`vm-replica:${vm}`] ?? null;
export const syncedOn = (f: Flags, vm: string): string | null => f[`vm-synced:${vm}`] ?? null;
export const heldFrom = (f: Flags, vm: string): string | null => f[`vm-hold:${vm}`] ?? null;
export const migrationTo = (f: Flags, vm: string): string | null => f[`vm-mig:${vm}`] ?? null;
export const stoppedByOperator = (f: Flags, vm: string): boolean => `vm-stop:${vm}` in f;
export const stamp = (f: Flags, key: string): number | null => {
  const v = Number(f[key] ?? NaN);
  return Number.isFinite(v) ? v : null;
};
export const startStamp = (f: Flags, vm: string) => stamp(f, `vm-start:${vm}`);
export const restartStamp = (f: Flags, vm: string) => stamp(f, `vm-restart:${vm}`);

/** Anti-flapping, as for the services (ha/flags.ts flapHold): why an automatic restart elsewhere waits, or null. */
export function vmFlapHold(f: Flags, vm: string, wallNow: number, periodMs: number): string | null {
  const last = stamp(f, `vm-moved:${vm}`);
  if (last === null) return null;
  const ack = startStamp(f, vm);
  if (ack !== null && ack >= last) return null;
  const age = wallNow - last;
  return age < periodMs ? `${vm} was restarted elsewhere ${Math.round(age / 1000)} s ago (anti-flapping period ${Math.round(periodMs / 60000)} min); 'bollard vm start ${vm}' allows another` : null;
}

/** Every VM flag of `vm` set to null: what forgetting a VM's bookkeeping commits. */
export function clearVmFlags(f: Flags, vm: string): Record<string, null> {
  const out: Record<string, null> = {};
  for (const k of Object.keys(f)) if (k.endsWith(`:${vm}`) && k.startsWith("vm-")) out[k] = null;
  return out;
}
