// QEMU for the image tests (boot.test.ts, cluster.test.ts; docs/image.md "Boot tests"): a
// node disk made from the built image with `bollard flash --allow-file` (the operator's path,
// seed included), booted headless with UEFI (OVMF), the serial console on a unix socket that
// the test reads and types into, as an operator on a serial line would. QEMU networking
// never leaves the machine: hub ports with nothing behind them, or multicast sockets on the
// loopback of a network namespace that has nothing else (cluster test). Every QEMU is
// stopped by its PID.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";

export const ROOT = new URL("../..", import.meta.url).pathname;

export interface Layout {
  [k: string]: string;
}

/** image/layout.conf as key=value pairs. */
export function layout(): Layout {
  const out: Layout = {};
  for (const line of readFileSync(join(ROOT, "image/layout.conf"), "utf8").split("\n")) {
    const m = /^([A-Z_0-9]+)=(\S+)/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

export function imagePath(): string {
  const version = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
  return process.env.IMAGE ?? join(ROOT, `dist/bollard-node-${version}.img`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type Accel = "kvm" | "tcg";

const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/** Why QEMU cannot run here, or null. */
export function qemuMissing(): string | null {
  if (spawnSync("qemu-system-x86_64", ["--version"], { stdio: "ignore" }).error) return "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)";
  if (!existsSync(OVMF_CODE)) return `${OVMF_CODE} is missing (apt-get install ovmf)`;
  return null;
}

/**
 * Whether KVM runs a standard x86_64 guest: boots the image's own kernel (from its ESP, read
 * with mtools) under -accel kvm for up to 15 s and looks for its first line on the serial
 * port. /dev/kvm can exist and open yet not run one (e.g. a PVM host, kvm_pvm: a
 * paravirtual KVM that runs only PVM-enabled guest kernels).
 */
/**
 * What can be known about KVM without a guest kernel: /dev/kvm there and usable, and not
 * kvm_pvm (PVM runs only PVM-enabled guests, never Debian's kernel or OVMF). ok: a boot probe
 * (kvmUsable) must still decide. Lets make test skip before it builds an image for nothing.
 */
export function kvmPrecheck(): { ok: boolean; why: string } {
  if (!existsSync("/dev/kvm")) return { ok: false, why: "/dev/kvm does not exist" };
  const fd = spawnSync("sh", ["-c", "exec 3<>/dev/kvm"], { stdio: "ignore" });
  if (fd.status !== 0) return { ok: false, why: "/dev/kvm cannot be opened read-write" };
  if (existsSync("/sys/module/kvm_pvm") && !existsSync("/sys/module/kvm_intel") && !existsSync("/sys/module/kvm_amd"))
    return { ok: false, why: "this host's KVM is kvm_pvm (PVM), which runs only PVM-enabled guest kernels, not Debian's kernel or OVMF" };
  return { ok: true, why: "/dev/kvm usable" };
}

export async function kvmUsable(image: string, dir: string): Promise<{ ok: boolean; why: string }> {
  const pre = kvmPrecheck();
  if (!pre.ok) return pre;
  mkdirSync(dir, { recursive: true });
  const kernel = join(dir, "probe-vmlinuz");
  const esp = 1024 * 1024;
  const cp = spawnSync("mcopy", ["-n", "-i", `${image}@@${esp}`, "::/bollard/a/vmlinuz", kernel], { env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } });
  if (cp.status !== 0) return { ok: false, why: `cannot read the kernel from the image's ESP: ${cp.stderr}` };
  const q = spawn("qemu-system-x86_64", ["-accel", "kvm", "-machine", "q35", "-cpu", "host,arch-capabilities=off", "-m", "256", "-nodefaults", "-display", "none",
    "-monitor", "none", "-serial", "stdio", "-kernel", kernel, "-append", "console=ttyS0 panic=-1", "-no-reboot"], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  q.stdout.on("data", (d) => (out += d));
  q.stderr.on("data", (d) => (out += d));
  const t0 = Date.now();
  while (Date.now() - t0 < 15_000 && q.exitCode === null && !/Linux version/.test(out)) await sleep(100);
  const booted = /Linux version/.test(out);
  if (q.exitCode === null) q.kill("SIGKILL");
  await new Promise((r) => (q.exitCode !== null || q.signalCode !== null ? r(null) : q.once("exit", r)));
  rmSync(kernel, { force: true });
  if (booted) return { ok: true, why: `KVM boots a guest kernel (${Date.now() - t0} ms to its first line)` };
  const pvm = existsSync("/sys/module/kvm_pvm") ? " This host's KVM is kvm_pvm (PVM), which runs only PVM-enabled guest kernels, not Debian's kernel or OVMF." : "";
  const err = /KVM internal error|emulation failure|failed to set MSR[^\n]*/.exec(out)?.[0];
  return { ok: false, why: `/dev/kvm is there but KVM did not run the image's kernel within 15 s${err ? ` (QEMU: ${err})` : ""}.${pvm}` };
}

export interface VmOptions {
  name: string;
  dir: string;
  disk: string;
  accel: Accel;
  memMb?: number;
  smp?: number;
  /** -netdev specs of the NICs, in PCI slot order from 0x3 (the guest names them enp0s3, ...) */
  netdevs: string[];
  /** run QEMU inside this network namespace */
  netns?: string;
  /** 1-99: makes the NICs' MAC addresses unique among the VMs */
  id?: number;
  /** more disks, read-only raw files (the guest's vdb, vdc, ...) */
  extraDisks?: string[];
}

/** Strips ANSI escapes and carriage returns (line-oriented output is matched as text). */
export const plain = (s: string) => s.replace(/\x1b\[[0-9;?=]*[A-Za-z]/g, "").replace(/\r/g, "");

/**
 * What an 80x24 VT100 on the serial line shows: enough of ANSI X3.64 for a full-screen
 * program that redraws only what changed (`bollard console`): CUP, cursor moves, ED, EL, CR,
 * LF with scrolling; other sequences (SGR, modes) are ignored. Screens are matched on this,
 * not on the byte stream, in which a changed field arrives without its label.
 */
export class Term {
  private rows: string[][];
  private r = 0;
  private c = 0;
  private esc = "";

  constructor(readonly width = 80, readonly height = 24) {
    this.rows = Array.from({ length: height }, () => Array<string>(width).fill(" "));
  }

  feed(data: string): void {
    for (const ch of data) {
      if (this.esc) {
        this.esc += ch;
        if (this.esc === "\x1b[" || (this.esc.startsWith("\x1b[") && !/[A-Za-z@`~]$/.test(this.esc))) continue;
        if (this.esc.length === 2 && this.esc !== "\x1b[") { this.esc = ""; continue; }
        this.csi(this.esc.slice(2));
        this.esc = "";
        continue;
      }
      if (ch === "\x1b") this.esc = ch;
      else if (ch === "\r") this.c = 0;
      else if (ch === "\n") this.down();
      else if (ch === "\b") this.c = Math.max(0, this.c - 1);
      else if (ch >= " " && ch <= "~") {
        if (this.c >= this.width) { this.c = 0; this.down(); }
        this.rows[this.r]![this.c++] = ch;
      }
    }
  }

  private down(): void {
    if (this.r < this.height - 1) this.r++;
    else {
      this.rows.shift();
      this.rows.push(Array<string>(this.width).fill(" "));
    }
  }

  private csi(seq: string): void {
    const cmd = seq.slice(-1);
    const args = seq.slice(0, -1).replace(/^[?=]/, "").split(";").map((x) => (x === "" ? NaN : Number(x)));
    const n = (i: number, d = 1) => (Number.isFinite(args[i]) && args[i]! > 0 ? args[i]! : d);
    const clamp = () => {
      this.r = Math.min(this.height - 1, Math.max(0, this.r));
      this.c = Math.min(this.width - 1, Math.max(0, this.c));
    };
    const blank = (row: number, from: number, to: number) => { for (let i = from; i < to; i++) this.rows[row]![i] = " "; };
    if (seq.startsWith("?") || seq.startsWith("=")) return; // private modes
    switch (cmd) {
      case "H": case "f": this.r = n(0) - 1; this.c = n(1) - 1; clamp(); break;
      case "A": this.r -= n(0); clamp(); break;
      case "B": this.r += n(0); clamp(); break;
      case "C": this.c += n(0); clamp(); break;
      case "D": this.c -= n(0); clamp(); break;
      case "G": this.c = n(0) - 1; clamp(); break;
      case "J":
        if ((args[0] || 0) === 2) this.rows.forEach((_, i) => blank(i, 0, this.width));
        else if ((args[0] || 0) === 0) { blank(this.r, this.c, this.width); for (let i = this.r + 1; i < this.height; i++) blank(i, 0, this.width); }
        break;
      case "K":
        if ((args[0] || 0) === 0) blank(this.r, this.c, this.width);
        else if (args[0] === 1) blank(this.r, 0, this.c + 1);
        else blank(this.r, 0, this.width);
        break;
      default: break; // SGR and the rest: no effect on the text
    }
  }

  /** The screen as 24 lines of text, trailing blanks trimmed. */
  text(): string {
    return this.rows.map((r) => r.join("").trimEnd()).join("\n");
  }
}

export class Vm {
  readonly serialPath: string;
  private proc: ChildProcess | null = null;
  private sock: Socket | null = null;
  /** everything read from the serial line */
  text = "";
  /** what a VT100 on the line shows now */
  readonly term = new Term();
  t0 = 0;
  private mark = 0;
  private n = 0;

  constructor(readonly o: VmOptions) {
    this.serialPath = join(o.dir, `${o.name}.serial.sock`);
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const o = this.o;
    mkdirSync(o.dir, { recursive: true });
    const vars = join(o.dir, `${o.name}.vars.fd`);
    writeFileSync(vars, readFileSync(OVMF_VARS));
    rmSync(this.serialPath, { force: true });
    const cpu = o.accel === "kvm" ? ["-accel", "kvm", "-cpu", "host,arch-capabilities=off"] : ["-accel", "tcg,thread=multi", "-cpu", "max"];
    const nics = o.netdevs.flatMap((spec, i) => ["-netdev", `${spec},id=n${i}`, "-device", `virtio-net-pci,netdev=n${i},addr=0x${(3 + i).toString(16)},mac=52:54:00:${String(o.id ?? 1).padStart(2, "0")}:00:${String(i).padStart(2, "0")}`]);
    const args = [
      "-name", o.name, "-machine", "q35", ...cpu, "-smp", String(o.smp ?? 2), "-m", String(o.memMb ?? 2048),
      "-nodefaults", "-display", "none", "-monitor", "none",
      "-drive", `if=pflash,format=raw,readonly=on,file=${OVMF_CODE}`, "-drive", `if=pflash,format=raw,file=${vars}`,
      "-drive", `file=${o.disk},format=raw,if=virtio,cache=unsafe`,
      ...(o.extraDisks ?? []).flatMap((f) => ["-drive", `file=${f},format=raw,if=virtio,readonly=on`]),
      "-device", "i6300esb", "-rtc", "base=utc",
      ...nics,
      "-chardev", `socket,id=s0,path=${this.serialPath},server=on,wait=off,logfile=${join(o.dir, `${o.name}.serial.log`)}`, "-serial", "chardev:s0",
    ];
    const cmd = o.netns ? ["ip", ["netns", "exec", o.netns, "qemu-system-x86_64", ...args]] as const : ["qemu-system-x86_64", args] as const;
    this.t0 = Date.now();
    const p = spawn(cmd[0], [...cmd[1]], { stdio: ["ignore", "ignore", "pipe"] });
    this.proc = p;
    let err = "";
    p.stderr!.on("data", (d) => (err += d));
    for (let i = 0; !existsSync(this.serialPath); i++) {
      if (p.exitCode !== null) throw new Error(`qemu ${o.name} exited: ${err.trim()}`);
      if (i > 100) throw new Error(`qemu ${o.name}: no serial socket after 10 s: ${err.trim()}`);
      await sleep(100);
    }
    this.sock = connect(this.serialPath);
    this.sock.setEncoding("latin1");
    this.sock.on("data", (d: string) => {
      this.text += d;
      this.term.feed(d);
    });
    this.sock.on("error", () => {});
  }

  /** Seconds since QEMU was started. */
  get elapsed(): number {
    return (Date.now() - this.t0) / 1000;
  }

  /** Waits for `re` in the serial text read after the last mark; returns the match. */
  async waitFor(re: RegExp, timeoutMs: number, what = String(re)): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = plain(this.text.slice(this.mark)).match(re);
      if (m) return m;
      if (this.proc?.exitCode !== null && this.proc?.exitCode !== undefined) throw new Error(`${this.o.name}: QEMU exited while waiting for ${what}`);
      if (Date.now() > end) throw new Error(`${this.o.name}: no ${what} on the serial console within ${timeoutMs / 1000} s; last screen:\n${plain(this.text.slice(-1500))}`);
      await sleep(200);
    }
  }

  /** Waits until the terminal's screen matches `re`; returns the match. */
  async waitScreen(re: RegExp, timeoutMs: number, what = String(re)): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.term.text().match(re);
      if (m) return m;
      if (this.proc?.exitCode !== null && this.proc?.exitCode !== undefined) throw new Error(`${this.o.name}: QEMU exited while waiting for ${what}`);
      if (Date.now() > end) throw new Error(`${this.o.name}: no ${what} on the serial console within ${timeoutMs / 1000} s; the screen:\n${this.term.text()}`);
      await sleep(200);
    }
  }

  /** Only text read from now on counts for waitFor. */
  markNow(): void {
    this.mark = this.text.length;
  }

  send(s: string): void {
    this.sock!.write(s);
  }

  /** From the bollard console: L, then log in as root at agetty's prompt. */
  async login(password: string, timeoutMs: number): Promise<void> {
    this.markNow();
    this.send("L");
    await this.waitFor(/login: *$/m, timeoutMs, "login prompt");
    this.markNow();
    this.send("root\r");
    await this.waitFor(/Password: *$/m, timeoutMs, "password prompt");
    this.markNow();
    this.send(`${password}\r`);
    await this.waitFor(/root@[a-z0-9-]+:~# *$/m, timeoutMs, "shell prompt");
    // a plain shell for the test: no line editing, no echo, no prompt, so output is output
    this.send("stty -echo; export PS1= PS2= TERM=dumb; exec bash --noediting --norc\r");
    await sleep(1000);
    await this.sh("true", timeoutMs);
  }

  /** Runs a shell command at the logged-in prompt; returns its output and exit status. */
  async sh(cmd: string, timeoutMs: number): Promise<{ out: string; code: number }> {
    const tag = `__END_${++this.n}_${Math.random().toString(36).slice(2, 8)}`;
    this.markNow();
    // the tag on a line of its own, whether or not the command's output ended with a newline
    this.send(`${cmd}; r=$?; echo; echo "${tag} $r"\r`);
    const m = await this.waitFor(new RegExp(`([\\s\\S]*?)^${tag} (\\d+)$`, "m"), timeoutMs, `the end of "${cmd.slice(0, 60)}"`);
    return { out: m[1]!.trim(), code: Number(m[2]) };
  }

  /** Stops QEMU by its PID (SIGTERM, then SIGKILL). */
  async stop(): Promise<void> {
    this.sock?.destroy();
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(t);
  }
}

/** A node disk: `bollard flash IMAGE DISK --seed SEED --allow-file` onto a sparse file. */
export function flashDisk(bundle: string, image: string, disk: string, seed: string, sizeGiB: number): void {
  rmSync(disk, { force: true });
  spawnSync("truncate", ["-s", `${sizeGiB}G`, disk]);
  const r = spawnSync(process.execPath, [bundle, "flash", image, disk, "--seed", seed, "--allow-file", "--yes"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`bollard flash onto ${disk} failed (${r.status}): ${r.stderr}`);
}
