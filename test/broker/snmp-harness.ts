// Real switches for tests: net-snmp's snmpd serving IF-MIB over real Linux interfaces
// (STYLE: "what the lab can run for real is tested for real"). Interfaces are never created
// in the root namespace: a test file calls `inNetns(import.meta.url)`, which
//   - creates namespace btest-sw-<pid> with lo up and veth pairs swpN <-> nicN (swpN is the
//     switch port, nicN the node's NIC on the other end: nicN down = swpN oper down),
//   - runs the same test file again inside it (`ip netns exec NS node --import tsx FILE`),
//     so that the test's SNMP client, its snmpd(s) and any ipmi_sim all live in there,
//   - then kills whatever is left in the namespace (`ip netns pids`) and deletes it.
// Inside, SwitchHarness starts one snmpd per switch on a loopback address (127.0.5.10,
// 127.0.5.11, ... port 1161) with rwcommunity "private", a v3 authPriv (SHA/AES) user, its
// own SNMP_PERSISTENT_DIR, MIBS= and the ifTable cache turned off (LAB-NOTES: else a port
// change shows only after 3 s). Both switches see the namespace's ports: give each switch
// its own swpN in a test so that a read-back on one proves nothing about the other.
//
//   if (await inNetns(import.meta.url, 4)) { const sw = await SwitchHarness.start([...]); ... }
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
// @ts-expect-error net-snmp ships no type declarations (used raw here: readiness and the cache knob)
import netSnmp from "net-snmp";
import type { SwitchConfig } from "../../agent/hw/snmp.ts";

export const NS_ENV = "BOLLARD_TEST_NETNS";
export const V3 = { user: "bollard", authKey: "auth-key-0123", privKey: "priv-key-0123" };
/** nsCacheTimeout for ifTable (NET-SNMP-AGENT-MIB nsCacheTable, index = the ifTable OID) */
const IFTABLE_CACHE_TIMEOUT = "1.3.6.1.4.1.8072.1.5.3.1.2.1.3.6.1.2.1.2.2";
const SYS_NAME = "1.3.6.1.2.1.1.5.0";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" });

function removeNetns(ns: string): void {
  try {
    for (const pid of ip("netns", "pids", ns).split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), "SIGKILL"); } catch { /* gone */ }
    }
  } catch { /* no namespace */ }
  for (let i = 0; i < 20; i++) {
    try {
      ip("netns", "delete", ns);
      return;
    } catch {
      execFileSync("sleep", ["0.05"]);
    }
  }
}

/**
 * Inside the namespace (the second run): returns its name. Outside (the first run): sets up
 * btest-sw-<pid> with `ports` veth pairs, runs `fileUrl` in it, cleans up, sets the exit
 * code from that run and returns null: the caller then does nothing else.
 */
export async function inNetns(fileUrl: string, ports = 4): Promise<string | null> {
  const inside = process.env[NS_ENV];
  if (inside) return inside;
  const ns = `btest-sw-${process.pid}`;
  const cleanup = () => removeNetns(ns);
  process.on("exit", cleanup);
  try {
    const t0 = performance.now();
    ip("netns", "add", ns);
    ip("-n", ns, "link", "set", "lo", "up");
    for (let i = 1; i <= ports; i++) {
      ip("-n", ns, "link", "add", `swp${i}`, "type", "veth", "peer", "name", `nic${i}`);
      ip("-n", ns, "link", "set", `swp${i}`, "up");
      ip("-n", ns, "link", "set", `nic${i}`, "up");
    }
    console.log(`netns ${ns}: lo + ${ports} veth pairs in ${(performance.now() - t0).toFixed(0)} ms`);
    const child = spawn("ip", ["netns", "exec", ns, process.execPath, "--import", "tsx", fileURLToPath(fileUrl)], {
      stdio: "inherit", env: { ...process.env, [NS_ENV]: ns },
    });
    const stop = () => child.kill("SIGTERM");
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    const code = await new Promise<number>((r) => child.once("exit", (c, sig) => r(c ?? (sig ? 1 : 0))));
    process.off("SIGINT", stop);
    process.off("SIGTERM", stop);
    if (code !== 0) process.exitCode = code; // keep a failure of suites run outside
  } catch (e) {
    console.error(`netns ${ns}: ${(e as Error).message}`);
    process.exitCode = 1;
  } finally {
    cleanup();
    process.off("exit", cleanup);
  }
  return null;
}

export interface SwitchSpec {
  name: string;
  host: string;
  /** UDP port; default 1161 */
  port?: number;
}

interface Sw extends SwitchSpec {
  port: number;
  dir: string;
  proc: ChildProcess | null;
}

export class SwitchHarness {
  readonly root: string;
  private readonly sws = new Map<string, Sw>();
  private readonly onExit = () => {
    for (const s of this.sws.values()) if (s.proc?.pid) try { process.kill(s.proc.pid, "SIGKILL"); } catch { /* gone */ }
    rmSync(this.root, { recursive: true, force: true });
  };

  private constructor() {
    if (!process.env[NS_ENV]) throw new Error("SwitchHarness runs only inside a test namespace (inNetns)");
    this.root = mkdtempSync(join(tmpdir(), "bollard-snmp-"));
    process.on("exit", this.onExit);
  }

  static async start(specs: SwitchSpec[]): Promise<SwitchHarness> {
    const h = new SwitchHarness();
    try {
      for (const s of specs) {
        const dir = join(h.root, s.name);
        mkdirSync(join(dir, "persist"), { recursive: true });
        h.sws.set(s.name, { ...s, port: s.port ?? 1161, dir, proc: null });
        writeFileSync(join(dir, "snmpd.conf"), [
          `agentAddress udp:${s.host}:${s.port ?? 1161}`,
          "rocommunity public default",
          "rwcommunity private 127.0.0.0/8",
          `createUser ${V3.user} SHA "${V3.authKey}" AES "${V3.privKey}"`,
          `rwuser ${V3.user} priv`,
          `sysName ${s.name}`,
          "dontLogTCPWrappersConnects yes",
          "",
        ].join("\n"), { mode: 0o600 });
        await h.startSwitch(s.name);
      }
    } catch (e) {
      await h.stop();
      throw e;
    }
    return h;
  }

  private sw(name: string): Sw {
    const s = this.sws.get(name);
    if (!s) throw new Error(`no switch "${name}"`);
    return s;
  }

  /** The adapter config: v2c with community "private", or v3 authPriv SHA/AES. */
  config(name: string, version: "2c" | "3" = "2c", over: Partial<SwitchConfig> = {}): SwitchConfig {
    const s = this.sw(name);
    const base = { name, host: s.host, port: s.port, timeoutMs: 500, retries: 1 };
    return version === "2c" ? { ...base, version, community: "private", ...over } : { ...base, version, v3: { ...V3 }, ...over };
  }

  pids(): number[] {
    return [...this.sws.values()].flatMap((s) => (s.proc?.pid ? [s.proc.pid] : []));
  }

  /** Sets a link up or down in the namespace (`ip link set IFACE up|down`). */
  link(iface: string, up: boolean): void {
    ip("link", "set", iface, up ? "up" : "down");
  }

  /** `ip -o link show IFACE`: the kernel's own view, for checking what SNMP says. */
  linkState(iface: string): string {
    return ip("-o", "link", "show", iface);
  }

  /** The kernel's operstate of IFACE ("UP", "DOWN", "LOWERLAYERDOWN", ...), from `ip -o link show`. */
  operState(iface: string): string {
    return /\bstate (\S+)/.exec(this.linkState(iface))?.[1] ?? "UNKNOWN";
  }

  /** Waits until the kernel itself reports IFACE's operstate as one of WANT. A carrier change on
   * a veth's far end reaches operstate through the kernel's linkwatch work, which runs
   * asynchronously (and may be deferred up to a second), so SNMP cannot show it sooner: a test of
   * what SNMP reports first waits for the kernel, then walks. Returns the ms waited. */
  async awaitOperState(iface: string, want: string[], timeoutMs = 3000): Promise<number> {
    const t0 = performance.now();
    for (;;) {
      const now = this.operState(iface);
      if (want.includes(now)) return performance.now() - t0;
      if (performance.now() - t0 > timeoutMs) throw new Error(`${iface}: kernel operstate ${now} after ${timeoutMs} ms, want ${want.join("|")}`);
      await sleep(20);
    }
  }

  log(name: string): string {
    try { return readFileSync(join(this.sw(name).dir, "snmpd.log"), "utf8"); } catch { return ""; }
  }

  /** Starts one snmpd (again); resolves once it answers and its ifTable cache is off. */
  async startSwitch(name: string): Promise<number> {
    const s = this.sw(name);
    if (s.proc) return 0;
    const t0 = performance.now();
    const child = spawn("snmpd", ["-f", "-C", "-c", join(s.dir, "snmpd.conf"), "-Lf", join(s.dir, "snmpd.log")], {
      stdio: "ignore", env: { ...process.env, MIBS: "", SNMP_PERSISTENT_DIR: join(s.dir, "persist") },
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
    s.proc = child;
    child.once("exit", () => { if (s.proc === child) s.proc = null; });
    const session = netSnmp.createSession(s.host, "private", { port: s.port, version: netSnmp.Version2c, timeout: 100, retries: 0 });
    session.on("error", () => {});
    const req = (f: (cb: (e: Error | null) => void) => void) => new Promise<Error | null>((r) => f((e) => r(e)));
    try {
      for (;;) {
        if (!s.proc) throw new Error(`snmpd ${name} exited at start: ${this.log(name).trim()}`);
        if (!(await req((cb) => session.get([SYS_NAME], cb)))) break;
        if (performance.now() - t0 > 5000) throw new Error(`snmpd ${name}: no answer after 5 s: ${this.log(name).trim()}`);
        await sleep(20);
      }
      const e = await req((cb) => session.set([{ oid: IFTABLE_CACHE_TIMEOUT, type: netSnmp.ObjectType.Integer, value: 0 }], cb));
      if (e) throw new Error(`snmpd ${name}: turning the ifTable cache off: ${e.message}`);
    } finally {
      session.close();
    }
    return performance.now() - t0;
  }

  /** Stops one snmpd by its PID; resolves once it is gone. */
  async stopSwitch(name: string): Promise<void> {
    const p = this.sw(name).proc;
    if (!p?.pid) return;
    const gone = new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once("exit", () => r())));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 2000);
    await gone;
    clearTimeout(t);
  }

  async stop(): Promise<void> {
    for (const name of this.sws.keys()) await this.stopSwitch(name);
    process.off("exit", this.onExit);
    rmSync(this.root, { recursive: true, force: true });
  }
}
