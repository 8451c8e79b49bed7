// What the VM runtime reads of this node (ha/vm-types.ts VmNodeFacts): each VM's QEMU (QMP
// query-status; the mirror's jobs; an incoming migration's progress), the storage daemon's
// exports, and the probe of each mirror's target: a target that stops answering makes the
// mirror "stalled" (its guest's writes hang in it), which the leader answers by outdating it.
import type { VmCatalog, VmFacts, VmNodeFacts, VmRunState } from "../ha/vm-types.ts";
import type { VmLocal } from "../ha/vm-local.ts";
import { incomingDone, mirrorFacts } from "../resources/vm-mirror.ts";
import { markInSync } from "../resources/vm-rebuild.ts";
import type { StorageDaemon } from "../resources/vm-storage.ts";
import type { VmProcess } from "../resources/vm.ts";

/** a mirror target that has not answered the probe this long: "stalled" */
export const STALL_MS = 2000;

/** What the runtime keeps about its VMs between reads and actions. */
export interface VmLocalState {
  procs: Map<string, VmProcess>;
  storage: StorageDaemon;
  /** the node each VM's mirror goes to, since it was attached */
  mirrorTo: Map<string, string>;
  /** a mirror that broke: reported until it is ended (unmirror) */
  broken: Map<string, { to: string; error: string }>;
  /** monotonic ms since when a mirror's target does not answer the probe */
  stalledSince: Map<string, number>;
  pausedForMirror: Set<string>;
  /** VMs whose QEMU waits for a live migration here, and on which port */
  incoming: Map<string, { port: number }>;
  /** the last live migration out of this node, per VM */
  migrations: Map<string, { to: string; status: string; ms?: number; downtimeMs?: number }>;
  errors: Map<string, string>;
  /** VMs the agent stops, kills or quits: their exit is no failure */
  expectedExit: Set<string>;
  /** the QEMU instance seen running at the last read */
  lastInst: Map<string, string>;
  /** the copy of the disks each VM's mirror target said it holds when the mirror was attached */
  mirrorCopy: Map<string, string | null>;
  /** "node/copy" whose in-sync mark (vm-rebuild.ts markInSync) each VM's QEMU has */
  marked: Map<string, string>;
}

const STATES: Record<string, VmRunState> = {
  running: "running", "finish-migrate": "running", inmigrate: "incoming", postmigrate: "migrated",
  paused: "paused", prelaunch: "paused", suspended: "paused", "io-error": "paused", "internal-error": "paused", watchdog: "paused", "guest-panicked": "paused", debug: "paused",
};

export interface ReadContext {
  self: string;
  catalog: VmCatalog;
  s: VmLocalState;
  local: VmLocal;
  now: number;
  flags: Record<string, string>;
  holder(vm: string): string | null;
  epoch: number;
  defs: string;
}

export async function readVmFacts(c: ReadContext): Promise<VmNodeFacts> {
  const vms: VmFacts[] = [];
  for (const def of c.catalog.defs) {
    const f = await readOne(c, def.name);
    if (f) vms.push(f);
  }
  let exports: string[] = [];
  const storage = c.s.storage.up();
  if (storage) {
    try { exports = await c.s.storage.exported(c.catalog.defs); } catch { /* daemon gone: the next ensure() starts it */ }
  }
  const copies = c.s.storage.copies(c.catalog.defs, exports);
  return { epoch: c.epoch, defs: c.defs, storage, exports, ...(Object.keys(copies).length ? { copies } : {}), vms };
}

async function readOne(c: ReadContext, vm: string): Promise<VmFacts | null> {
  const { s } = c;
  const p = s.procs.get(vm)!;
  const holder = c.holder(vm);
  const err = s.errors.get(vm);
  if (!p.running()) {
    const was = s.lastInst.get(vm);
    if (was) {
      s.lastInst.delete(vm);
      s.mirrorTo.delete(vm);
      s.mirrorCopy.delete(vm);
      s.marked.delete(vm);
      s.pausedForMirror.delete(vm);
      s.incoming.delete(vm);
      if (!s.expectedExit.delete(vm) && holder === c.self) {
        c.local.failed(vm, c.now, c.flags, holder);
        s.errors.set(vm, `its QEMU (${was}) exited without being asked to`);
      }
    }
    const failed = c.local.gaveUp(vm, c.now, c.flags, holder);
    if (!failed && holder !== c.self && !err) return null;
    return { name: vm, state: failed ? "failed" : "stopped", mirror: null, fails: c.local.failures(vm, c.now, c.flags, holder), ...(s.errors.get(vm) ? { error: s.errors.get(vm) } : {}) };
  }
  s.lastInst.set(vm, p.inst!);
  let status = "unknown";
  try {
    if (!p.qmp?.isOpen) await p.adopt();
    status = await p.status();
  } catch (e) {
    s.errors.set(vm, `QMP: ${(e as Error).message}`);
  }
  let state: VmRunState = STATES[status] ?? "running";
  const x: VmFacts = { name: vm, state, mirror: null, fails: c.local.failures(vm, c.now, c.flags, holder), inst: p.inst!, startedAt: p.startedAt ?? undefined };
  const inc = s.incoming.get(vm);
  if (inc && (state === "incoming" || state === "paused")) {
    let done = false;
    try { done = await incomingDone(p.need()); } catch { /* not yet */ }
    state = "incoming";
    x.state = state;
    x.incoming = { port: inc.port, done };
  }
  const mig = s.migrations.get(vm);
  if (mig) x.migration = { ...mig };
  const to = s.mirrorTo.get(vm);
  const broken = s.broken.get(vm);
  if (broken) x.mirror = { to: broken.to, state: "broken", done: 0, error: broken.error };
  else if (to && p.qmp?.isOpen) {
    try {
      const m = await mirrorFacts(p.need(), p.def, to);
      const since = s.stalledSince.get(vm);
      if (m && m.state !== "broken" && since !== undefined && c.now - since >= STALL_MS) x.mirror = { ...m, state: "broken", error: `stalled: ${to}'s storage daemon has not answered for ${Math.round(c.now - since)} ms` };
      else x.mirror = m;
      // the copy on `to` is complete: from now on its bitmap may serve an incremental rebuild
      const copy = s.mirrorCopy.get(vm);
      if (m?.state === "ready" && copy && s.marked.get(vm) !== `${to}/${copy}`) {
        await markInSync(p.need(), p.def, to, copy);
        s.marked.set(vm, `${to}/${copy}`);
      }
    } catch (e) {
      x.mirror = { to, state: "broken", done: 0, error: (e as Error).message };
    }
  }
  if (s.pausedForMirror.has(vm)) x.pausedForMirror = true;
  if (s.errors.get(vm)) x.error = s.errors.get(vm);
  return x;
}
