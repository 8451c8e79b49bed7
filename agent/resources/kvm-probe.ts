// Whether QEMU may use KVM here (issue 14 §1, LAB-NOTES "QEMU"): /dev/kvm can exist and open
// and still not run a standard guest (a PVM host's kvm_pvm runs only PVM-enabled kernels), so
// KVM is used only once a probe guest has booted under it: the configured probe kernel (its
// `expect` text on the serial port), or else a boot sector that writes "KVM" to COM1. Anything
// else, or nothing within the timeout: TCG.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface ProbeResult {
  accel: "kvm" | "tcg";
  why: string;
}

/** A boot sector: mov dx,0x3f8; out 'K','V','M'; hlt; jmp $ (then the 0x55AA signature). */
export function probeSector(): Buffer {
  const code = [0xba, 0xf8, 0x03, 0xb0, 0x4b, 0xee, 0xb0, 0x56, 0xee, 0xb0, 0x4d, 0xee, 0xf4, 0xeb, 0xfe];
  const b = Buffer.alloc(512);
  Buffer.from(code).copy(b);
  b[510] = 0x55;
  b[511] = 0xaa;
  return b;
}

/** What is known without booting anything: null when a boot must decide, else why not KVM. */
export function kvmPrecheck(): string | null {
  if (!existsSync("/dev/kvm")) return "/dev/kvm does not exist";
  if (existsSync("/sys/module/kvm_pvm") && !existsSync("/sys/module/kvm_intel") && !existsSync("/sys/module/kvm_amd")) {
    return "this host's KVM is kvm_pvm (PVM): it runs only PVM-enabled guest kernels";
  }
  return null;
}

export async function probeKvm(o: { qemu: string; probe: { kernel: string; initrd: string | null; append: string; expect: string } | null; timeoutMs?: number }): Promise<ProbeResult> {
  const pre = kvmPrecheck();
  if (pre) return { accel: "tcg", why: pre };
  const dir = mkdtempSync(join(tmpdir(), "bollard-kvm-probe-"));
  try {
    const out = join(dir, "serial.out");
    const args = ["-accel", "kvm", "-nodefaults", "-no-user-config", "-display", "none", "-m", "256", "-serial", `file:${out}`, "-no-reboot"];
    let expect = "KVM";
    if (o.probe) {
      args.push("-machine", "q35", "-kernel", o.probe.kernel, "-append", o.probe.append);
      if (o.probe.initrd) args.push("-initrd", o.probe.initrd);
      expect = o.probe.expect;
    } else {
      writeFileSync(join(dir, "probe.img"), probeSector());
      args.push("-machine", "pc", "-drive", `file=${join(dir, "probe.img")},format=raw,if=ide`);
    }
    const p = spawn(o.qemu, args, { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    const limit = o.timeoutMs ?? (o.probe ? 20_000 : 5000);
    const t0 = performance.now();
    const exited = new Promise<number | null>((r) => p.on("close", (c) => r(c)));
    let seen = false;
    while (performance.now() - t0 < limit && p.exitCode === null) {
      try { if (readFileSync(out, "latin1").includes(expect)) { seen = true; break; } } catch { /* not written yet */ }
      await new Promise((r) => setTimeout(r, 50));
    }
    p.kill("SIGKILL");
    await exited;
    const ms = Math.round(performance.now() - t0);
    if (seen) return { accel: "kvm", why: `a probe guest booted under KVM (${JSON.stringify(expect)} on its serial port after ${ms} ms)` };
    return { accel: "tcg", why: err.trim() ? `KVM refused the probe guest: ${err.trim().split("\n")[0]}` : `the probe guest printed nothing under KVM within ${limit} ms` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
