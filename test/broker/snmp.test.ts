// hw/snmp against a real snmpd (snmp-harness.ts): walks, ifAdminStatus set and read back,
// oper status following the link at once, rates, v3 authPriv, timeouts. The SNMP client,
// snmpd and the interfaces all live in namespace btest-sw-<pid> (this file runs twice:
// outside it only creates the namespace and runs the pure suites; inside, the real ones).
import { execFileSync } from "node:child_process";
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { counter, counterDelta, IF_ENTRY, IFX_ENTRY, type Port, type PortReading, portRates, portsFromVarbinds, SnmpSwitch } from "../../agent/hw/snmp.ts";
import { inNetns, NS_ENV, SwitchHarness } from "./snmp-harness.ts";

const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };
const ms = (t0: number) => performance.now() - t0;
const fmt = (x: number) => `${x.toFixed(1)} ms`;

// ---- pure: counters, varbinds -> ports, rates (run outside the namespace)
const Pure = suite("snmp: counters, ports, rates (pure)");
Pure("Counter64 Buffers become bigint", () => {
  assert.is(counter(Buffer.from([0x02, 0x04])), 516n);
  assert.is(counter(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])), 2n ** 64n - 1n);
  assert.is(counter(Buffer.alloc(0)), 0n);
  assert.is(counter(Buffer.alloc(9)), null);
  assert.is(counter(7), 7n);
  assert.is(counter("7"), null);
});
Pure("wraps, resets and plain increases", () => {
  const T32 = 2n ** 32n;
  assert.is(counterDelta(100n, 350n, 32), 250n);
  assert.is(counterDelta(T32 - 100n, 50n, 32), 150n); // wrapped
  assert.is(counterDelta(T32 - 100n, 50n, 32, 100n), null); // more than the line carries: a reset
  assert.is(counterDelta(1000n, 10n, 32), null); // dropped from low: a reset, not a wrap
  assert.is(counterDelta(2n ** 64n - 10n, 5n, 64), 15n);
  assert.is(counterDelta(5000n, 20n, 64), null);
  assert.is(counterDelta(0n, 2n ** 40n, 64, 10n), 2n ** 40n); // an increase is never a wrap
});
const vb = (oid: string, type: number, value: unknown) => ({ oid, type, value });
// ifEntry/ifXEntry varbinds as net-snmp returned them from snmpd 5.9.3 for a veth (ifIndex 3)
const SWP1 = [
  vb(`${IF_ENTRY}.2.3`, 4, Buffer.from("swp1")), vb(`${IF_ENTRY}.5.3`, 66, 4294967295), vb(`${IF_ENTRY}.7.3`, 2, 1),
  vb(`${IF_ENTRY}.8.3`, 2, 7), vb(`${IF_ENTRY}.10.3`, 65, 796), vb(`${IF_ENTRY}.13.3`, 65, 0), vb(`${IF_ENTRY}.14.3`, 65, 0),
  vb(`${IF_ENTRY}.16.3`, 65, 1166), vb(`${IF_ENTRY}.19.3`, 65, 0), vb(`${IF_ENTRY}.20.3`, 65, 0),
  vb(`${IFX_ENTRY}.1.3`, 4, Buffer.from("swp1")), vb(`${IFX_ENTRY}.6.3`, 70, Buffer.from([0x03, 0x1c])),
  vb(`${IFX_ENTRY}.10.3`, 70, Buffer.from([0x04, 0x8e])), vb(`${IFX_ENTRY}.15.3`, 66, 10000), vb(`${IFX_ENTRY}.18.3`, 4, Buffer.alloc(0)),
];
Pure("varbinds -> typed ports", () => {
  const [p, ...rest] = portsFromVarbinds([...SWP1, vb(`${IF_ENTRY}.2.9`, 128, null), vb("1.3.6.1.2.1.1.5.0", 4, Buffer.from("x"))]);
  assert.is(rest.length, 0);
  assert.equal(p, {
    ifIndex: 3, descr: "swp1", name: "swp1", alias: "", admin: "up", oper: "lowerLayerDown", speedMbps: 10000,
    inOctets: 796n, outOctets: 1166n, octetBits: 64, inErrors: 0, outErrors: 0, inDiscards: 0, outDiscards: 0,
  });
  // no ifXTable: 32-bit octets and ifSpeed
  const [q] = portsFromVarbinds(SWP1.filter((v) => v.oid.startsWith(IF_ENTRY)).map((v) => (v.oid.endsWith(".5.3") ? { ...v, value: 1e9 } : v)));
  assert.equal([q!.octetBits, q!.inOctets, q!.speedMbps, q!.name], [32, 796n, 1000, null]);
});
const port = (over: Partial<Port>): Port => ({
  ifIndex: 1, descr: "swp1", name: null, alias: null, admin: "up", oper: "up", speedMbps: 1000, inOctets: 0n, outOctets: 0n,
  octetBits: 64, inErrors: 0, outErrors: 0, inDiscards: 0, outDiscards: 0, ...over,
});
Pure("rates between two readings, with a 32-bit wrap", () => {
  const a: PortReading = { switch: "s", at: 0, ports: [port({ inOctets: 1000n, outOctets: 2n ** 32n - 1000n, octetBits: 32, inErrors: 5 }), port({ ifIndex: 2, descr: "swp2" })] };
  const b: PortReading = { switch: "s", at: 2000, ports: [port({ inOctets: 1000n + 25_000_000n, outOctets: 4000n, octetBits: 32, inErrors: 9 }), port({ ifIndex: 2, descr: "other" })] };
  const [r, ...none] = portRates(a, b);
  assert.is(none.length, 0); // ifIndex 2 now names another port: no rate
  assert.equal([r!.seconds, r!.inBps, r!.outBps, r!.inErrorsPerS, r!.utilization], [2, 100_000_000, 20_000, 2, 0.1]);
  assert.equal(portRates(b, b), []);
  const reset = portRates(b, { ...a, at: 4000 });
  assert.equal([reset[0]!.inBps, reset[0]!.inErrorsPerS], [null, null]); // counters went back down: agent restart
});

const inside = process.env[NS_ENV];
if (!inside) Pure.run();

// ---- real: snmpd in the namespace
const ns = await inNetns(import.meta.url, 4);
if (ns) {
  const sw = await SwitchHarness.start([{ name: "switchA", host: "127.0.5.10" }, { name: "switchB", host: "127.0.5.11" }]);
  const A = new SnmpSwitch(sw.config("switchA"), { log: nolog });
  const byDescr = (r: PortReading, d: string) => r.ports.find((p) => p.descr === d)!;
  const walk = async (s: SnmpSwitch) => {
    const r = await s.ports();
    if (!r.ok) throw new Error(r.error);
    return r.value;
  };

  const Real = suite(`snmp: real snmpd in ${ns}`);
  Real("walk ifTable + ifXTable: typed ports", async () => {
    const times: number[] = [];
    let r!: PortReading;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      r = await walk(A);
      times.push(ms(t0));
    }
    times.sort((x, y) => x - y);
    console.log(`  full walk (ifTable + ifXTable, ${r.ports.length} ports): first ${fmt(times[9]!)}, median ${fmt(times[5]!)}, min ${fmt(times[0]!)}`);
    assert.equal(r.ports.map((p) => p.descr).sort(), ["lo", "nic1", "nic2", "nic3", "nic4", "swp1", "swp2", "swp3", "swp4"]);
    const p = byDescr(r, "swp1");
    assert.equal([p.admin, p.oper, p.speedMbps, p.octetBits, typeof p.inOctets, p.name], ["up", "up", 10000, 64, "bigint", "swp1"]);
  });
  Real("find ifIndex by ifDescr; an unknown port is an error value listing the ports", async () => {
    const r = await walk(A);
    const idx = await A.ifIndexOf("swp3");
    assert.equal(idx, { ok: true, value: byDescr(r, "swp3").ifIndex });
    const none = await A.ifIndexOf("swp9");
    assert.ok(!none.ok && /no port "swp9".*ports: lo, .*swp4/.test(none.error), JSON.stringify(none));
  });
  Real("ifAdminStatus down, read back, the kernel agrees, oper follows at once; up again", async () => {
    const idx = (await A.ifIndexOf("swp1")) as { ok: true; value: number };
    let t0 = performance.now();
    const down = await A.setAdminStatus(idx.value, "down");
    console.log(`  set ifAdminStatus down + read back: ${fmt(ms(t0))}`);
    assert.equal(down, { ok: true, value: "down" });
    assert.not.match(sw.linkState("swp1"), /<[^>]*\bUP\b[^>]*>/);
    await sw.awaitOperState("nic1", ["DOWN", "LOWERLAYERDOWN"]); // the far end's carrier, through linkwatch
    const r = await walk(A);
    assert.equal([byDescr(r, "swp1").admin, byDescr(r, "swp1").oper], ["down", "down"]);
    assert.ok(["down", "lowerLayerDown"].includes(byDescr(r, "nic1").oper!)); // the node's end lost its carrier
    t0 = performance.now();
    assert.equal(await A.setAdminStatus(idx.value, "up"), { ok: true, value: "up" });
    console.log(`  set ifAdminStatus up + read back: ${fmt(ms(t0))}`);
    assert.match(sw.linkState("swp1"), /<[^>]*\bUP\b[^>]*>/);
    await sw.awaitOperState("swp1", ["UP"]);
    assert.is(byDescr(await walk(A), "swp1").oper, "up");
  });
  Real("oper status change on the far end is visible at once (ifTable cache off)", async () => {
    sw.link("nic2", false);
    const kernelMs = await sw.awaitOperState("swp2", ["DOWN", "LOWERLAYERDOWN"]);
    const t0 = performance.now();
    const r = await walk(A);
    console.log(`  nic2 down -> kernel swp2 down after ${fmt(kernelMs)} (linkwatch) -> swp2 oper ${byDescr(r, "swp2").oper} in the next walk (${fmt(ms(t0))})`);
    assert.is(byDescr(r, "swp2").admin, "up");
    assert.ok(["down", "lowerLayerDown"].includes(byDescr(r, "swp2").oper!), `SNMP says ${byDescr(r, "swp2").oper}, the kernel now: ${sw.linkState("swp2")}`);
    sw.link("nic2", true);
    await sw.awaitOperState("swp2", ["UP"]);
    assert.is(byDescr(await walk(A), "swp2").oper, "up");
  });
  Real("rates from two readings (1 MB over lo)", async () => {
    const a = await walk(A);
    const sock = createSocket("udp4");
    const chunk = Buffer.alloc(10_000);
    for (let i = 0; i < 100; i++) await new Promise<void>((r) => sock.send(chunk, 9, "127.0.0.1", () => r()));
    sock.close();
    const b = await walk(A);
    const lo = portRates(a, b).find((x) => x.descr === "lo")!;
    const bytes = (lo.inBps! * lo.seconds) / 8;
    console.log(`  lo: ${(lo.inBps! / 1e6).toFixed(1)} Mb/s in over ${fmt(lo.seconds * 1000)} (${bytes} bytes)`);
    assert.ok(bytes >= 1_000_000, `${bytes} bytes counted`);
    assert.is(lo.inErrorsPerS, 0);
  });
  Real("v3 authPriv (SHA/AES): walk and set; a wrong key is an error value", async () => {
    const v3 = new SnmpSwitch(sw.config("switchA", "3"), { log: nolog });
    let t0 = performance.now();
    const r = await v3.ports();
    console.log(`  v3 full walk (incl. engine discovery): ${fmt(ms(t0))}`);
    assert.ok(r.ok && r.value.ports.length === 9);
    const idx = (await v3.ifIndexOf("swp4")) as { ok: true; value: number };
    assert.equal(await v3.setAdminStatus(idx.value, "down"), { ok: true, value: "down" });
    assert.equal(await A.adminStatus(idx.value), { ok: true, value: "down" });
    assert.equal(await v3.setAdminStatus(idx.value, "up"), { ok: true, value: "up" });
    v3.close();
    const bad = new SnmpSwitch(sw.config("switchA", "3", { v3: { user: "bollard", authKey: "wrong-auth-key", privKey: "wrong-priv-key" } }), { log: nolog });
    t0 = performance.now();
    const e = await bad.ports();
    console.log(`  v3 wrong key -> error value in ${fmt(ms(t0))}: ${e.ok ? "" : e.error}`);
    assert.ok(!e.ok && e.error.startsWith("snmp switchA 127.0.5.10:1161: walk ifTable/ifXTable:"));
    bad.close();
  });
  Real("a read-only community cannot set: an error value", async () => {
    const ro = new SnmpSwitch(sw.config("switchA", "2c", { community: "public" }), { log: nolog });
    const r = await ro.setAdminStatus(1, "down");
    assert.ok(!r.ok && /set ifAdminStatus\.1=down/.test(r.error), JSON.stringify(r));
    ro.close();
  });
  Real("write access proven without a write: a wrong-typed SET (RFC 3416 §4.2.5); read-only, wrong community, v3", async () => {
    const idx = (await A.ifIndexOf("swp3")) as { ok: true; value: number };
    const before = await A.adminStatus(idx.value);
    const t0 = performance.now();
    const rw = await A.checkWriteAccess(idx.value);
    console.log(`  write access check: ${fmt(ms(t0))}: ${rw.ok ? rw.value : rw.error}`);
    assert.ok(rw.ok && /allowed \(a wrong-typed SET refused as wrongType, nothing set\)/.test(rw.value), JSON.stringify(rw));
    assert.equal(await A.adminStatus(idx.value), before, "the port is as it was");
    const ro = new SnmpSwitch(sw.config("switchA", "2c", { community: "public" }), { log: nolog });
    const r1 = await ro.checkWriteAccess(idx.value);
    console.log(`  read-only community: ${r1.ok ? r1.value : r1.error}`);
    assert.ok(!r1.ok && /refused \((noAccess|notWritable|authorizationError)\)/.test(r1.error), JSON.stringify(r1));
    ro.close();
    const wrong = new SnmpSwitch(sw.config("switchA", "2c", { community: "nope" }), { log: nolog });
    const r2 = await wrong.checkWriteAccess(idx.value);
    assert.ok(!r2.ok && /no answer after 2 x 500 ms \(switch unreachable, or wrong community\?\)/.test(r2.error), JSON.stringify(r2));
    wrong.close();
    const v3 = new SnmpSwitch(sw.config("switchA", "3"), { log: nolog });
    const r3 = await v3.checkWriteAccess(idx.value);
    assert.ok(r3.ok, JSON.stringify(r3));
    v3.close();
    assert.equal(await A.adminStatus(idx.value), before, "still as it was");
  });
  Real("switch down: a timeout error value; back up: the same adapter works again", async () => {
    const B = new SnmpSwitch(sw.config("switchB"), { log: nolog });
    assert.ok((await B.ports()).ok);
    await sw.stopSwitch("switchB");
    const t0 = performance.now();
    const r = await B.ports();
    console.log(`  switch down -> error value in ${fmt(ms(t0))}: ${r.ok ? "" : r.error}`);
    assert.ok(!r.ok && /no answer after 2 x 500 ms/.test(r.error));
    const restart = await sw.startSwitch("switchB");
    console.log(`  snmpd restart ready in ${fmt(restart)}`);
    assert.ok((await B.ports()).ok);
    B.close();
  });
  Real("stop: no snmpd left", async () => {
    A.close();
    const pids = sw.pids();
    await sw.stop();
    for (const pid of pids) assert.throws(() => process.kill(pid, 0));
    const left = execFileSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).split(/\s+/).filter(Boolean)
      .map((pid) => { try { return readFileSync(`/proc/${pid}/comm`, "utf8").trim(); } catch { return ""; } });
    assert.not.ok(left.includes("snmpd"), left.join(" "));
  });
  Real.run();
}
