// The local VM manager's actions (ha/vm-local.ts VmLocalAction) carried out with the drivers:
// QEMU (resources/vm.ts), the storage daemon (vm-storage.ts), the mirror and the migration
// (vm-mirror.ts). Each returns what it did, for the event log, or throws.
import { spawnSync } from "node:child_process";
import type { VmsConfig } from "../config/vm-schema.ts";
import type { Logger } from "../env/env.ts";
import type { VmLocalAction } from "../ha/vm-local.ts";
import type { VmDef } from "../ha/vm-types.ts";
import { tapName } from "../resources/qemu-args.ts";
import { MigrationError, attachMirror, detachMirror, listenIncoming, migrateOut, waitReady } from "../resources/vm-mirror.ts";
import type { VmLocalState } from "./vm-facts.ts";

/** a start held until its mirror is in sync gives up after this long */
export const START_SYNC_MS = 120_000;

export interface ActionContext {
  self: string;
  c: VmsConfig;
  s: VmLocalState;
  accel: "kvm" | "tcg";
  log: Logger;
  def(vm: string): VmDef;
}

export async function runVmAction(x: ActionContext, a: VmLocalAction): Promise<string> {
  const { s, c } = x;
  const p = s.procs.get(a.vm)!;
  const def = x.def(a.vm);
  const addr = (n: string) => {
    const h = c.addresses[n];
    if (!h) throw new Error(`no address for ${n} (vms.nodes.${n}.address)`);
    return h;
  };
  switch (a.do) {
    case "start": {
      s.errors.delete(a.vm);
      s.broken.delete(a.vm);
      s.migrations.delete(a.vm);
      await p.start({ accel: x.accel, paused: !!a.mirror });
      try {
        bridgeTaps(def, x.log);
        if (!a.mirror) return `started (${x.accel}, QEMU ${p.inst})`;
        const t0 = performance.now();
        const how = await attachMirror(p.need(), def, addr(a.mirror), c.nbdPort, { node: a.mirror, copy: a.copy ?? null });
        s.mirrorTo.set(a.vm, a.mirror);
        s.mirrorCopy.set(a.vm, a.copy ?? null);
        s.marked.delete(a.vm);
        x.log.info(`${a.vm}: mirror to ${a.mirror}: ${how.why}`);
        await waitReady(p.need(), def, a.mirror, START_SYNC_MS);
        await p.cont();
        return `started (${x.accel}, QEMU ${p.inst}); held until its mirror to ${a.mirror} was in sync (${Math.round(performance.now() - t0)} ms), then continued`;
      } catch (e) {
        s.expectedExit.add(a.vm);
        await p.kill().catch(() => undefined);
        s.mirrorTo.delete(a.vm);
        throw e;
      }
    }
    case "incoming": {
      const port = c.migrationPort + c.catalog.defs.findIndex((d) => d.name === a.vm);
      s.migrations.delete(a.vm);
      await p.start({ accel: x.accel, incoming: true });
      bridgeTaps(def, x.log);
      await listenIncoming(p.need(), addr(x.self), port);
      s.incoming.set(a.vm, { port });
      return `QEMU ${p.inst} waits for the live migration on ${addr(x.self)}:${port}`;
    }
    case "cont": {
      await p.cont();
      s.pausedForMirror.delete(a.vm);
      s.incoming.delete(a.vm);
      s.migrations.delete(a.vm);
      return "continued";
    }
    case "pause": {
      await p.pause();
      s.pausedForMirror.add(a.vm);
      return "paused";
    }
    case "stop": s.expectedExit.add(a.vm); return p.stop(c.stopTimeoutMs);
    case "kill": s.expectedExit.add(a.vm); return p.kill();
    case "quit": s.expectedExit.add(a.vm); return p.quit();
    case "export": {
      await s.storage.ensure();
      await s.storage.export(def);
      return `serving ${def.disks.map((d) => d.name).join(", ")} on ${addr(x.self)}:${c.nbdPort}`;
    }
    case "unexport": {
      await s.storage.ensure();
      await s.storage.unexport(def);
      return "its disks are served no more";
    }
    case "mirror": {
      s.broken.delete(a.vm);
      const how = await attachMirror(p.need(), def, addr(a.to), c.nbdPort, { node: a.to, copy: a.copy ?? null });
      s.mirrorTo.set(a.vm, a.to);
      s.mirrorCopy.set(a.vm, a.copy ?? null);
      s.marked.delete(a.vm);
      s.stalledSince.delete(a.vm);
      const what = how.mode === "incremental" ? `incremental rebuild: ${how.why}` : how.mode === "full" ? how.why : "its jobs run already";
      return `mirroring to ${a.to} (${addr(a.to)}:${c.nbdPort}), write-blocking; ${what}`;
    }
    case "unmirror": {
      await detachMirror(p.need(), def, { yank: true });
      const to = s.mirrorTo.get(a.vm);
      s.mirrorTo.delete(a.vm);
      s.broken.delete(a.vm);
      s.stalledSince.delete(a.vm);
      return `mirror to ${to ?? "?"} ended`;
    }
    case "migrate": {
      s.migrations.set(a.vm, { to: a.to, status: "active" });
      try {
        const r = await migrateOut(p.need(), def, addr(a.to), a.port);
        s.mirrorTo.delete(a.vm);
        s.migrations.set(a.vm, { to: a.to, status: "completed", ms: r.ms, downtimeMs: r.downtimeMs });
        return `migrated to ${a.to} in ${r.ms} ms (downtime ${r.downtimeMs} ms, the disks handed over in ${r.switchoverMs} ms)`;
      } catch (e) {
        s.migrations.set(a.vm, { to: a.to, status: "failed" });
        if (e instanceof MigrationError && e.afterMirror) {
          // the mirror was ended at switchover and the source resumes by itself: the guest waits
          // until the leader outdated the replica (its writes would be on this disk alone)
          await p.pause().catch(() => undefined);
          s.pausedForMirror.add(a.vm);
          s.broken.set(a.vm, { to: a.to, error: `the migration failed after the mirror was ended: ${e.message}` });
          s.mirrorTo.delete(a.vm);
        }
        throw e;
      }
    }
  }
}

/** Puts each NIC's tap (made by QEMU) on its bridge, up. */
function bridgeTaps(def: VmDef, log: Logger): void {
  def.nics.forEach((nic, i) => {
    const tap = tapName(def.name, i);
    const r = spawnSync("ip", ["link", "set", tap, "master", nic.bridge, "up"], { encoding: "utf8" });
    if (r.status !== 0) log.warn(`${def.name}: cannot put ${tap} on bridge ${nic.bridge}: ${(r.stderr || String(r.error)).trim()}`);
  });
}
