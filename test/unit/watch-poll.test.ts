// runtime/watch-poll: the switch walks the watch makes. Oper and admin status (what the alarms
// judge) are walked every poll; the counters (metrics only) every fullEveryMs, and carried
// into the status-only readings in between (hw/snmp.ts withCounters). A fake SnmpPort records
// what it was asked; the clock is a variable.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { STATUS_COLUMNS, PORT_COLUMNS, withCounters, type Port, type PortReading } from "../../agent/hw/snmp.ts";
import { HwPoller } from "../../agent/runtime/watch-poll.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const full = (ifIndex: number, descr: string, oper: "up" | "down", octets: bigint): Port => ({
  ifIndex, descr, name: descr, alias: `to ${descr}`, admin: "up", oper, speedMbps: 10000, inOctets: octets, outOctets: octets * 2n, octetBits: 64,
  inErrors: 1, outErrors: 2, inDiscards: 3, outDiscards: 4,
});
// what portsFromVarbinds makes of the four status columns
const status = (ifIndex: number, descr: string, oper: "up" | "down"): Port => ({
  ifIndex, descr, name: descr, alias: null, admin: "up", oper, speedMbps: null, inOctets: null, outOctets: null, octetBits: 32,
  inErrors: null, outErrors: null, inDiscards: null, outDiscards: null,
});

const W = suite("withCounters");

W("a status reading gets the speed, alias and counters of the full one, port by port", () => {
  const f: PortReading = { switch: "switchA", at: 1000, ports: [full(1, "swp1", "up", 100n), full(2, "swp2", "up", 200n)] };
  const s: PortReading = { switch: "switchA", at: 5000, statusOnly: true, ports: [status(1, "swp1", "down"), status(2, "swp2", "up"), status(3, "swp3", "up")] };
  const m = withCounters(s, f);
  assert.is(m.at, 5000, "the status reading's time");
  assert.equal(m.ports[0], { ...full(1, "swp1", "up", 100n), oper: "down" }, "oper from the status walk, the rest from the full one");
  assert.equal(m.ports[2], status(3, "swp3", "up"), "a port the full walk did not have keeps nulls");
  const renamed = withCounters({ ...s, ports: [status(1, "swpX", "up")] }, f);
  assert.equal(renamed.ports[0], status(1, "swpX", "up"), "an ifIndex now naming another port takes nothing");
});

W("the status columns are the ones the alarms read, and a subset of the full walk", () => {
  assert.equal(STATUS_COLUMNS, ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.31.1.1.1.1"]);
  assert.ok(STATUS_COLUMNS.every((c) => PORT_COLUMNS.includes(c)));
});

W.run();

const P = suite("HwPoller.pollSwitch: status every poll, counters every fullEveryMs");

P("full at first, then status with the last counters, full again when the last full walk is old; a failed walk changes nothing", async () => {
  let now = 0;
  let oper: "up" | "down" = "up";
  let octets = 100n;
  let reachable = true;
  const asked: string[] = [];
  const poller = new HwPoller([], [{ name: "switchA", host: "a", version: "2c" }], {
    log: quiet,
    now: () => now,
    snmp: () => ({
      ports: async (what = "all") => {
        asked.push(what);
        if (!reachable) return { ok: false, error: "no answer after 2 x 500 ms" };
        return { ok: true, value: what === "all" ? { switch: "switchA", at: now, ports: [full(1, "swp1", oper, octets)] } : { switch: "switchA", at: now, statusOnly: true, ports: [status(1, "swp1", oper)] } };
      },
      close() {},
    }),
  });
  const poll = async (t: number) => {
    now = t;
    const r = await poller.pollSwitch("switchA", 10_000);
    assert.ok(r.ports.ok);
    return r.ports.ok ? r.ports.value.ports[0]! : null;
  };
  assert.equal((await poll(0))!.inOctets, 100n);
  octets = 150n;
  oper = "down";
  const p1 = (await poll(1000))!;
  assert.equal([p1.oper, p1.inOctets], ["down", 100n], "fresh oper status, the counters of t = 0");
  for (let t = 2000; t < 10_000; t += 1000) await poll(t);
  assert.equal((await poll(10_000))!.inOctets, 150n, "a full walk again at 10 s");
  assert.equal(asked, ["all", ...Array(9).fill("status"), "all"]);
  reachable = false;
  now = 11_000;
  assert.is((await poller.pollSwitch("switchA", 10_000)).ports.ok, false);
  reachable = true;
  assert.equal((await poll(12_000))!.inOctets, 150n, "status again, with the counters of the last full walk");
  const all = await poller.pollSwitch("switchA");
  assert.ok(all.ports.ok && !all.ports.value.statusOnly, "without fullEveryMs: a full walk (pollAll, benchmarks)");
});

P.run();
