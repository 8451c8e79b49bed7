// The VIP driver against real network namespaces (issue 4 item 4): btest-vip-<pid> holds the
// VIP on one end of a veth pair, btest-vipc-<pid> is a client on the other end, both in
// 198.18.200.0/24. The client's ARP cache starts with a wrong MAC for the VIP, as after a
// failover; the gratuitous ARP must correct it before any ping. Cleanup kills what runs in
// the namespaces, deletes them and checks that none is left.
import { execFile, execFileSync } from "node:child_process";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { VipDriver } from "../../agent/resources/vip.ts";
import { DriverError } from "../../agent/resources/types.ts";

const NS = `btest-vip-${process.pid}`;
const CLIENT = `btest-vipc-${process.pid}`;
const IF = `btv${process.pid}a`.slice(0, 15);
const IFC = `btv${process.pid}b`.slice(0, 15);
const VIP = "198.18.200.50";
const STALE_MAC = "02:00:00:00:00:01";
const fig = (what: string, v: number) => console.log(`    figure: ${what} = ${v.toFixed(1)} ms`);
const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8", timeout: 5000 });
const run = (bin: string, args: string[]): Promise<number> =>
  new Promise((resolve) => execFile(bin, args, { timeout: 5000 }, (e) => resolve(e ? Number((e as { code?: number }).code ?? -1) : 0)));
const ping = () => run("ip", ["netns", "exec", CLIENT, "ping", "-c1", "-W1", VIP]);
const clientMac = () => /lladdr (\S+)/.exec(ip("-n", CLIENT, "neigh", "show", VIP, "dev", IFC))?.[1] ?? null;
const neighMac = (): Promise<string | null> =>
  new Promise((resolve) => execFile("ip", ["-n", CLIENT, "neigh", "show", VIP, "dev", IFC], { timeout: 5000 }, (_e, out) => resolve(/lladdr (\S+)/.exec(String(out))?.[1] ?? null)));
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function cleanup(): void {
  for (const ns of [NS, CLIENT]) {
    if (!ip("netns", "list").split("\n").some((l) => l.split(" ")[0] === ns)) continue;
    for (const pid of ip("netns", "pids", ns).split("\n").filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // already gone
      }
    }
    ip("netns", "delete", ns);
  }
}

const V = suite<{ vip: VipDriver; mac: string }>("VipDriver (network namespaces)", {} as never);

V.before((ctx) => {
  cleanup();
  ip("netns", "add", NS);
  ip("netns", "add", CLIENT);
  ip("link", "add", IF, "netns", NS, "type", "veth", "peer", "name", IFC, "netns", CLIENT);
  ip("-n", NS, "addr", "add", "198.18.200.1/24", "dev", IF);
  ip("-n", CLIENT, "addr", "add", "198.18.200.2/24", "dev", IFC);
  for (const [ns, dev] of [[NS, IF], [CLIENT, IFC], [NS, "lo"], [CLIENT, "lo"]] as const) ip("-n", ns, "link", "set", dev, "up");
  ctx.mac = /link\/ether (\S+)/.exec(ip("-n", NS, "link", "show", IF))![1]!;
  ctx.vip = new VipDriver({ address: `${VIP}/24`, iface: IF, netns: NS, log: nolog, arpCount: 2 });
});

V.after(async (ctx) => {
  await ctx.vip?.settle();
  cleanup();
  const left = ip("netns", "list").split("\n").filter((l) => l.startsWith(NS) || l.startsWith(CLIENT));
  assert.equal(left, [], "namespaces left behind");
});

V("bad options are refused at construction", () => {
  assert.throws(() => new VipDriver({ address: "198.18.200.50", iface: IF, log: nolog }), (e: Error) => e instanceof DriverError && /IPv4 CIDR/.test(e.message));
  assert.throws(() => new VipDriver({ address: "198.18.200.50/24", iface: "eth0; reboot", log: nolog }), /not an interface name/);
});

V("not held: the client cannot reach it", async (ctx) => {
  assert.is(await ctx.vip.held(), false);
  assert.is.not(await ping(), 0);
});

V("acquire: address added, gratuitous ARP corrects a stale client cache, ping answers", async (ctx) => {
  // as after a failover: the client still has the old holder's MAC
  ip("-n", CLIENT, "neigh", "replace", VIP, "lladdr", STALE_MAC, "dev", IFC, "nud", "stale");
  const t0 = performance.now();
  const acquiring = ctx.vip.acquire();
  let macAt = 0;
  // polled while acquire() runs, without blocking the event loop
  while ((await neighMac()) !== ctx.mac) {
    assert.ok(performance.now() - t0 < 3000, `client still has ${clientMac()} for ${VIP}`);
    await sleep(1);
  }
  macAt = performance.now() - t0;
  const r = await acquiring;
  fig("acquire (ip addr add + first announcement)", r.ms);
  fig("acquire() start to the client's ARP entry showing the new MAC", macAt);
  assert.is(r.added, true);
  assert.is(r.announce.sent, true, r.announce.detail);
  assert.is(await ctx.vip.held(), true);
  assert.is(await ping(), 0);
  const done = await r.done;
  assert.equal(done, { sent: true, detail: "2 sent (arping -U)" });
});

V("acquire again: idempotent, nothing added, announced again", async (ctx) => {
  const r = await ctx.vip.acquire();
  assert.is(r.added, false);
  assert.is(r.announce.sent, true);
  await r.done;
  const addrs = ip("-n", NS, "-4", "addr", "show", "dev", IF).split("\n").filter((l) => l.includes(`inet ${VIP}/`));
  assert.is(addrs.length, 1);
});

V("release: unreachable; release again is a no-op", async (ctx) => {
  const r = await ctx.vip.release();
  assert.is(r.removed, true);
  fig("release", r.ms);
  assert.is(await ctx.vip.held(), false);
  assert.is.not(await ping(), 0);
  assert.equal((await ctx.vip.release()).removed, false);
});

V("announcement failure is reported, not thrown; the address is still held", async (ctx) => {
  const v = new VipDriver({ address: `${VIP}/24`, iface: IF, netns: NS, log: nolog, arpingBin: "/nonexistent/arping" });
  const r = await v.acquire();
  assert.is(r.added, true);
  assert.is(r.announce.sent, false);
  assert.match(r.announce.detail, "/nonexistent/arping");
  assert.is(await v.held(), true);
  await v.release();
  void ctx;
});

V("a missing interface is a DriverError naming it", async () => {
  const v = new VipDriver({ address: `${VIP}/24`, iface: "btnosuch0", netns: NS, log: nolog });
  await v.held().then(() => assert.unreachable("held() must throw"), (e: Error) => {
    assert.instance(e, DriverError);
    assert.match(e.message, "ip addr show dev btnosuch0 (netns " + NS + ") failed");
  });
});

V.run();
