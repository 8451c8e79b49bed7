// The client VIP (DESIGN §1, §5; issue 4 item 4): an address added to one node's interface
// and announced with gratuitous ARP, so that switches and clients move to the new holder at
// once instead of when their ARP caches expire. Released on self-fence.
//
// iproute2 `ip [-n NS] addr add|del|show` and iputils `arping -U` (package iputils-arping),
// run with execFile/spawn, argument arrays and timeouts; never a shell. With `netns` every
// command runs in that namespace (the lab's nodes and the tests).
//
// arping -U sends its first ARP request at once and then one a second (RFC 5227 §3 calls
// these "ARP announcements"; -A sends replies instead, which some switches prefer). acquire()
// does not wait out the repeats: once arping has run `announceGraceMs` without failing, the
// first one has gone out. Its failures (no such interface, address not local) come sooner.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { networkInterfaces, type NetworkInterfaceInfo } from "node:os";
import type { Logger } from "../env/env.ts";
import { DriverError } from "./types.ts";

export interface VipOptions {
  /** "198.18.0.100/24" */
  address: string;
  iface: string;
  /** run every command in this network namespace (`ip -n NS`, `ip netns exec NS arping`) */
  netns?: string;
  log: Logger;
  /** announcements per acquire (arping -c); default 3 */
  arpCount?: number;
  /** "U": ARP requests (default), "A": ARP replies */
  arpMode?: "U" | "A";
  /** how long arping must run without failing for the first announcement to count as sent; default 50 */
  announceGraceMs?: number;
  /** per command; default 3000 */
  timeoutMs?: number;
  ipBin?: string;
  arpingBin?: string;
  /** held() without `netns`: the addresses of this namespace's interfaces; default
   *  os.networkInterfaces (tests pass a fake) */
  interfaces?: () => NodeJS.Dict<NetworkInterfaceInfo[]>;
}

export interface AnnounceResult {
  /** false: not sent (arping failed or is missing); the address is held all the same */
  sent: boolean;
  /** "first of 3 sent (arping -U)", or arping's error */
  detail: string;
}

export interface AcquireResult {
  /** false when the address was already on the interface */
  added: boolean;
  announce: AnnounceResult;
  /** add + first announcement */
  ms: number;
  /** resolves when arping has sent them all (never rejects) */
  done: Promise<AnnounceResult>;
}

interface Run {
  code: number;
  out: string;
  err: string;
}

const CIDR_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/;
const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;

export class VipDriver {
  readonly ip: string;
  private readonly arping = new Set<ChildProcess>();

  constructor(private readonly o: VipOptions) {
    const m = CIDR_RE.exec(o.address);
    if (!m || m.slice(1, 5).some((b) => Number(b) > 255) || Number(m[5]) > 32)
      throw new DriverError("vip", `address: expected IPv4 CIDR like 198.18.0.100/24, got ${JSON.stringify(o.address)}`);
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(o.iface)) throw new DriverError("vip", `iface: not an interface name: ${JSON.stringify(o.iface)}`);
    if (o.arpCount !== undefined && !(Number.isInteger(o.arpCount) && o.arpCount >= 1))
      throw new DriverError("vip", `arpCount: expected a positive integer, got ${o.arpCount}`);
    this.ip = o.address.split("/")[0]!;
  }

  /** Adds the address (idempotent) and announces it. Throws only when the address is not held afterwards. */
  async acquire(): Promise<AcquireResult> {
    const t0 = performance.now();
    let added = false;
    if (!(await this.held())) {
      const r = await this.ipCmd(["addr", "add", this.o.address, "dev", this.o.iface]);
      // EEXIST: someone added it between held() and here; that is the state we want
      if (r.code !== 0 && !/exists|already assigned/i.test(r.err))
        throw new DriverError("vip", `ip addr add ${this.o.address} dev ${this.o.iface}${this.where()} failed: ${r.err.trim() || `exit ${r.code}`}`);
      added = r.code === 0;
    }
    const { first, done } = this.announce();
    const announce = await first;
    const res = { added, announce, ms: ms(t0), done };
    const fields = { vip: this.o.address, iface: this.o.iface, netns: this.o.netns, added, announced: announce.sent, ms: res.ms };
    if (announce.sent) this.o.log.info("VIP acquired", fields);
    else this.o.log.warn(`VIP acquired but not announced: ${announce.detail}`, fields);
    return res;
  }

  /** Removes the address (idempotent). Stops any announcement still running. */
  async release(): Promise<{ removed: boolean; ms: number }> {
    const t0 = performance.now();
    for (const c of this.arping) if (c.pid) c.kill("SIGTERM");
    const r = await this.ipCmd(["addr", "del", this.o.address, "dev", this.o.iface]);
    if (r.code !== 0) {
      if (!(await this.held())) return { removed: false, ms: ms(t0) };
      throw new DriverError("vip", `ip addr del ${this.o.address} dev ${this.o.iface}${this.where()} failed: ${r.err.trim() || `exit ${r.code}`}`);
    }
    this.o.log.info("VIP released", { vip: this.o.address, iface: this.o.iface, netns: this.o.netns, ms: ms(t0) });
    return { removed: true, ms: ms(t0) };
  }

  /**
   * Whether the address is on the interface (any prefix length). The HA runtime asks 4 times
   * a second, so without `netns` this costs no process: os.networkInterfaces() (getifaddrs(3),
   * netlink inside this process, ~0.1 ms) lists the addresses of the interfaces of the
   * agent's own namespace that are up and running (libuv leaves the others out). When the
   * interface is listed, its addresses are the answer. When it is not (down, no carrier, no
   * address at all), the address may still be on it: `ip -j addr show` decides, as it does
   * for every call with `netns`. Measured: 2.2 ms of the agent's CPU plus 2.8 ms in the `ip`
   * child per call before, ~0.1 ms now (docs/hardware.md, "Idle cost").
   */
  async held(): Promise<boolean> {
    if (!this.o.netns) {
      const known = this.heldLocally();
      if (known !== null) return known;
    }
    return this.heldIp();
  }

  /** From the interfaces that are up and running; null when `iface` is not among them. */
  private heldLocally(): boolean | null {
    let all: NodeJS.Dict<NetworkInterfaceInfo[]>;
    try {
      all = (this.o.interfaces ?? networkInterfaces)();
    } catch {
      return null; // getifaddrs failed: ask ip
    }
    let listed = false;
    // an address with a label (ip addr add ... label bond0:vip) is listed under the label
    for (const [name, addrs] of Object.entries(all)) {
      if (name !== this.o.iface && !name.startsWith(`${this.o.iface}:`)) continue;
      listed = true;
      // family is the number 4 on Node 18.0-18.3
      if ((addrs ?? []).some((a) => (a.family === "IPv4" || (a.family as unknown) === 4) && a.address === this.ip)) return true;
    }
    return listed ? false : null;
  }

  private async heldIp(): Promise<boolean> {
    const r = await this.ipCmd(["-j", "addr", "show", "dev", this.o.iface]);
    if (r.code !== 0) throw new DriverError("vip", `ip addr show dev ${this.o.iface}${this.where()} failed: ${r.err.trim() || `exit ${r.code}`}`);
    try {
      const links = JSON.parse(r.out) as { addr_info?: { family?: string; local?: string }[] }[];
      return links.some((l) => (l.addr_info ?? []).some((a) => a.family === "inet" && a.local === this.ip));
    } catch (e) {
      throw new DriverError("vip", `ip -j addr show: unreadable answer: ${r.out.slice(0, 200)}`, e);
    }
  }

  /** Waits for announcements still running (tests, shutdown). */
  async settle(): Promise<void> {
    await Promise.all([...this.arping].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once("close", r)))));
  }

  private announce(): { first: Promise<AnnounceResult>; done: Promise<AnnounceResult> } {
    const mode = this.o.arpMode ?? "U";
    const count = this.o.arpCount ?? 3;
    const args = [`-${mode}`, "-c", String(count), "-I", this.o.iface, this.ip];
    const [bin, argv] = this.o.netns
      ? [this.o.ipBin ?? "ip", ["netns", "exec", this.o.netns, this.o.arpingBin ?? "arping", ...args]]
      : [this.o.arpingBin ?? "arping", args];
    let err = "";
    let settleFirst: (r: AnnounceResult) => void = () => {};
    const first = new Promise<AnnounceResult>((r) => (settleFirst = r));
    const done = new Promise<AnnounceResult>((resolve) => {
      const child = spawn(bin, argv, { stdio: ["ignore", "ignore", "pipe"], timeout: (count + 2) * 1000 });
      this.arping.add(child);
      child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
      const grace = setTimeout(() => settleFirst({ sent: true, detail: `first of ${count} sent (arping -${mode})` }), this.o.announceGraceMs ?? 50);
      const end = (r: AnnounceResult) => {
        clearTimeout(grace);
        this.arping.delete(child);
        settleFirst(r);
        resolve(r);
      };
      child.once("error", (e) => end({ sent: false, detail: `arping: ${e.message}` }));
      child.once("close", (code, sig) => {
        if (code === 0) end({ sent: true, detail: `${count} sent (arping -${mode})` });
        else if (sig && !err) end({ sent: true, detail: `arping stopped by ${sig}` });
        else end({ sent: false, detail: `arping -${mode} -I ${this.o.iface} ${this.ip}${this.where()}: ${err.trim() || `exit ${code ?? sig}`}` });
      });
    });
    return { first, done };
  }

  private where(): string {
    return this.o.netns ? ` (netns ${this.o.netns})` : "";
  }

  private ipCmd(args: string[]): Promise<Run> {
    const argv = this.o.netns ? ["-n", this.o.netns, ...args] : args;
    return new Promise((resolve) => {
      execFile(this.o.ipBin ?? "ip", argv, { timeout: this.o.timeoutMs ?? 3000 }, (e, out, err) => {
        const code = e ? (typeof (e as { code?: unknown }).code === "number" ? (e as { code: number }).code : -1) : 0;
        resolve({ code, out, err: err || (e && code === -1 ? e.message : "") });
      });
    });
  }
}
