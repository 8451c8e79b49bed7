// resources/vip: held(), the check the HA runtime makes 4 times a second. Without `netns` it
// answers from the interfaces that are up and running (os.networkInterfaces) and runs `ip`
// only when the interface is not among them; with `netns` it always runs `ip -n NS`. `ip` is
// replaced by a script that records each call, so a test sees whether a process was run.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { NetworkInterfaceInfo } from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { DriverError } from "../../agent/resources/types.ts";
import { VipDriver } from "../../agent/resources/vip.ts";

const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };

const v4 = (address: string, cidr = 24): NetworkInterfaceInfo =>
  ({ address, netmask: "255.255.255.0", family: "IPv4", mac: "02:00:c6:12:00:01", internal: false, cidr: `${address}/${cidr}` });
const v6 = (address: string): NetworkInterfaceInfo =>
  ({ address, netmask: "ffff:ffff:ffff:ffff::", family: "IPv6", mac: "02:00:c6:12:00:01", internal: false, cidr: `${address}/64`, scopeid: 0 });

interface Ctx {
  dir: string;
  /** a stand-in for ip: appends its argv to calls.log, prints answer.json, exits with exit.code */
  ip: string;
}

const s = suite<Ctx>("VipDriver.held()", {} as Ctx);

s.before((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "bollard-vip-held-"));
  ctx.ip = join(ctx.dir, "ip");
  writeFileSync(ctx.ip, `#!/bin/sh\nprintf '%s\\n' "$*" >> ${ctx.dir}/calls.log\ncat ${ctx.dir}/answer.json\nexit $(cat ${ctx.dir}/exit.code)\n`);
  chmodSync(ctx.ip, 0o755);
});

s.before.each((ctx) => {
  rmSync(join(ctx.dir, "calls.log"), { force: true });
  writeFileSync(join(ctx.dir, "answer.json"), "[]");
  writeFileSync(join(ctx.dir, "exit.code"), "0");
});

s.after((ctx) => rmSync(ctx.dir, { recursive: true, force: true }));

const calls = (ctx: Ctx): string[] => (existsSync(join(ctx.dir, "calls.log")) ? readFileSync(join(ctx.dir, "calls.log"), "utf8").trim().split("\n") : []);
async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.instance(e, DriverError);
    assert.match((e as Error).message, re);
    return;
  }
  assert.unreachable("expected a DriverError");
}
const vip = (ctx: Ctx, interfaces: () => NodeJS.Dict<NetworkInterfaceInfo[]>, netns?: string) =>
  new VipDriver({ address: "198.18.0.10/24", iface: "bond0", netns, log: nolog, ipBin: ctx.ip, interfaces });

s("the address on the interface: held, and no process is run", async (ctx) => {
  const v = vip(ctx, () => ({ lo: [v4("127.0.0.1", 8)], bond0: [v4("198.18.0.11"), v4("198.18.0.10"), v6("fe80::1")] }));
  assert.is(await v.held(), true);
  assert.equal(calls(ctx), []);
});

s("the interface listed without the address: not held, and no process is run", async (ctx) => {
  const v = vip(ctx, () => ({ bond0: [v4("198.18.0.11"), v6("fe80::1")], eth0: [v4("198.18.0.10")] }));
  assert.is(await v.held(), false, "the address on another interface does not count");
  assert.equal(calls(ctx), []);
});

s("an address under a label of the interface (bond0:vip) is on the interface", async (ctx) => {
  const v = vip(ctx, () => ({ bond0: [v4("198.18.0.11")], "bond0:vip": [v4("198.18.0.10")] }));
  assert.is(await v.held(), true);
  assert.equal(calls(ctx), []);
  const other = vip(ctx, () => ({ bond0: [v4("198.18.0.11")], bond01: [v4("198.18.0.10")] }));
  assert.is(await other.held(), false, "bond01 is another interface, not a label of bond0");
});

s("the interface not listed (down, no carrier): ip decides, both ways", async (ctx) => {
  const v = vip(ctx, () => ({ lo: [v4("127.0.0.1", 8)] }));
  writeFileSync(join(ctx.dir, "answer.json"), JSON.stringify([{ ifname: "bond0", flags: ["NO-CARRIER", "UP"], addr_info: [{ family: "inet", local: "198.18.0.10", prefixlen: 24 }] }]));
  assert.is(await v.held(), true);
  assert.equal(calls(ctx), ["-j addr show dev bond0"]);
  writeFileSync(join(ctx.dir, "answer.json"), JSON.stringify([{ ifname: "bond0", addr_info: [{ family: "inet", local: "198.18.0.11", prefixlen: 24 }] }]));
  assert.is(await v.held(), false);
  assert.is(calls(ctx).length, 2);
});

s("os.networkInterfaces failing: ip decides", async (ctx) => {
  const v = vip(ctx, () => {
    throw new Error("uv_interface_addresses: ENOMEM");
  });
  writeFileSync(join(ctx.dir, "answer.json"), JSON.stringify([{ ifname: "bond0", addr_info: [{ family: "inet", local: "198.18.0.10" }] }]));
  assert.is(await v.held(), true);
  assert.is(calls(ctx).length, 1);
});

s("with netns: always ip -n NS, whatever this namespace's interfaces say", async (ctx) => {
  const v = vip(ctx, () => ({ bond0: [v4("198.18.0.10")] }), "node1");
  assert.is(await v.held(), false, "the answer is ip's ([]), not this namespace's");
  assert.equal(calls(ctx), ["-n node1 -j addr show dev bond0"]);
});

s("ip failing or answering garbage is a DriverError, not a crash", async (ctx) => {
  const v = vip(ctx, () => ({}));
  writeFileSync(join(ctx.dir, "answer.json"), "not json");
  await rejects(v.held(), /unreadable answer/);
  writeFileSync(join(ctx.dir, "exit.code"), "1");
  await rejects(v.held(), /ip addr show dev bond0 failed/);
});

s("real: 127.0.0.1 is on lo, 127.0.0.2 is not; no process either time", async (ctx) => {
  const lo = (a: string) => new VipDriver({ address: a, iface: "lo", log: nolog, ipBin: ctx.ip });
  assert.is(await lo("127.0.0.1/8").held(), true);
  assert.is(await lo("127.0.0.2/8").held(), false);
  assert.equal(calls(ctx), []);
});

s.run();
