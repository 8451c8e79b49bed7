// What the real-QEMU tests on loopback share (vm-qemu.test.ts, vm-rebuild.test.ts, vm-backup.test.ts):
// why they cannot run here, a free port, polling, the lab guest's definition, processes tracked
// by PID for the cleanup.
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import type { Logger } from "../../agent/env/env.ts";
import type { VmDef } from "../../agent/ha/vm-types.ts";
import { VmProcess } from "../../agent/resources/vm.ts";
import { buildGuest, guestAppend, readSerial, type Guest } from "../lab/guest/guest.ts";

export const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function why(): string | null {
  if (process.getuid?.() !== 0) return "needs root (apt-get download for the guest; QEMU's sockets under /tmp are fine otherwise)";
  for (const b of ["qemu-system-x86_64", "qemu-storage-daemon"]) if (spawnSync(b, ["--version"], { stdio: "ignore" }).error) return `${b} is not installed (apt-get install qemu-system-x86 qemu-system-common)`;
  return null;
}

/** Why the QEMU tests cannot run here, or the lab guest they boot (built once, cached). */
export function guestUnlessSkipped(): { skip: string | null; guest: Guest | null } {
  const skip = why();
  if (skip) return { skip, guest: null };
  const g = buildGuest();
  if ("error" in g) throw new Error(g.error);
  return { skip, guest: g };
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = (s.address() as { port: number }).port; s.close(() => resolve(p)); });
  });
}

export async function until<T>(f: () => T | null | false | undefined, ms: number, what: string): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(50);
  }
}

/** A lab-guest VM of one disk (`sizeMb`, from `image` if given), under `root/<node>` per node. */
export function vmDef(guest: Guest | null, name: string, o: { gapUs?: number; sizeMb?: number; image?: string | null } = {}): VmDef {
  return {
    name, vcpus: 1, memoryMb: 128, disks: [{ name: `${name}-d`, sizeMb: o.sizeMb ?? 16, image: o.image ?? null }], nics: [], group: null, priority: 0, dependsOn: [], autostart: true,
    kernel: { path: guest?.kernel ?? "/nonexistent", initrd: guest?.initrd ?? null, append: guestAppend(o.gapUs ?? 20_000) },
  };
}

export const vmProc = (root: string, d: VmDef, node: string) => new VmProcess(d, { vmsDir: `${root}/${node}`, qemu: "qemu-system-x86_64", machine: "q35", log: quiet });
export const ackCount = (vm: VmProcess) => readSerial(vm.paths.serialLog).acks.length;

/** Writes through the guest's disk device, as the guest would (HMP qemu-io on the virtio backend: above the mirror's filter). */
export async function deviceWrite(vm: VmProcess, disk: string, cmd: string): Promise<void> {
  const out = await vm.need().execute<string>("human-monitor-command", { "command-line": `qemu-io -d /machine/peripheral/vd-${disk}/virtio-backend "${cmd}"` });
  if (/error|failed|not/i.test(out)) throw new Error(`qemu-io ${cmd}: ${out.trim()}`);
}

/** PIDs to kill at the end (SIGCONT first: a test may leave one stopped). */
export class Pids {
  private readonly s = new Set<number>();
  track(p: number | null): void { if (p) this.s.add(p); }
  killAll(): void {
    for (const p of this.s) { try { process.kill(p, "SIGCONT"); process.kill(p, "SIGKILL"); } catch { /* gone */ } }
  }
}
