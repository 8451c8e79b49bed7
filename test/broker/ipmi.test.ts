// hw/ipmi against real BMCs: ipmitool -I lanplus -C 3 talking to OpenIPMI's ipmi_sim
// (bmc-harness.ts) on 127.0.5.1 and 127.0.5.2 port 623. Power through the chassis_control
// script, sensors over thresholds, SEL entries after a crossing, FRU, the password kept out
// of argv (checked in /proc of a running ipmitool), and the ways a BMC fails as error values.
// Every ipmitool call's time is printed.
import { spawn } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { Ipmi, type IpmiCall, type Runner } from "../../agent/hw/ipmi.ts";
import type { Sensor } from "../../agent/hw/ipmi-parse.ts";
import { BmcHarness } from "./bmc-harness.ts";

const nolog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => nolog };
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const calls: IpmiCall[] = [];
const onCall = (c: IpmiCall) => {
  calls.push(c);
  console.log(`    ipmitool ${c.cmd.padEnd(21)} ${c.bmc}  ${c.ms.toFixed(1).padStart(7)} ms  ${c.ok ? "ok" : "error"}`);
};

const h = await BmcHarness.start([{ name: "bmc1", host: "127.0.5.1" }, { name: "bmc2", host: "127.0.5.2" }]);
const ipmi = new Ipmi(h.config("bmc1"), { log: nolog, onCall });
const value = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const sensor = (list: Sensor[], name: string) => list.find((s) => s.name === name)!;

const Power = suite("ipmi: chassis power against ipmi_sim");
Power("status, off, on: the chassis script's state follows", async () => {
  assert.is(value(await ipmi.powerStatus()), "on");
  assert.is(value(await ipmi.powerOff()), "off");
  assert.is(h.power("bmc1"), "off");
  assert.is(value(await ipmi.powerStatus()), "off");
  assert.is(value(await ipmi.powerOn()), "on");
  assert.is(value(await ipmi.powerStatus()), "on");
  assert.is(h.power("bmc1"), "on");
});
Power.run();

const Sensors = suite("ipmi: sensors");
Sensors("sensor: values, units, thresholds", async () => {
  const list = value(await ipmi.sensors());
  assert.equal(list.map((s) => s.name), ["Temp", "Fan1", "Fan2", "PSU1 Status"]);
  const t = sensor(list, "Temp");
  assert.equal([t.value, t.unit, t.severity, t.thresholds!.ucr], [40, "degrees C", "ok", 80]);
  assert.equal([sensor(list, "Fan1").value, sensor(list, "Fan1").thresholds!.lcr], [6000, 1000]);
  assert.equal(sensor(list, "PSU1 Status").offsets, [0]);
});
Sensors("a temperature above its critical threshold, a stopped fan, a failed PSU", async () => {
  await h.setTemp("bmc1", 85);
  await h.setSensor("bmc1", 2, 0);
  await h.console("bmc1", "sensor_set_bit 0x20 0 4 1 1 1");
  const list = value(await ipmi.sensors());
  assert.equal([sensor(list, "Temp").value, sensor(list, "Temp").status, sensor(list, "Temp").severity], [85, "cr", "critical"]);
  assert.equal([sensor(list, "Fan1").value, sensor(list, "Fan1").severity], [0, "critical"]);
  assert.equal(sensor(list, "PSU1 Status").offsets, [0, 1]);
  const sdr = value(await ipmi.sensors("sdr"));
  assert.equal([sensor(sdr, "Temp").status, sensor(sdr, "PSU1 Status").states], ["ucr", "Presence detected, Failure detected"]);
  await h.setTemp("bmc1", 40);
  await h.setSensor("bmc1", 2, 60);
  await h.console("bmc1", "sensor_set_bit 0x20 0 4 1 0 1");
});
Sensors.run();

const Sel = suite("ipmi: SEL");
Sel("new entries appear after a threshold crossing, only once", async () => {
  const base = value(await ipmi.selSince(null));
  await sleep(1100); // let the 1 s file poll settle on 40 after the last suite
  const settled = value(await ipmi.selSince(base.lastId));
  const t0 = performance.now();
  writeFileSync(join(h.root, "bmc1", "temp"), "91\n"); // the way a real sensor changes: the 1 s poll reads it
  let got = value(await ipmi.selSince(settled.lastId));
  while (!got.entries.some((e) => /Non-recoverable going high/.test(e.event)) && performance.now() - t0 < 3000) {
    await sleep(100);
    got = value(await ipmi.selSince(settled.lastId));
  }
  console.log(`  temp 91 written -> SEL entry seen after ${(performance.now() - t0).toFixed(0)} ms`);
  const temp = got.entries.filter((e) => e.sensor === "Temperature Temp" && e.direction === "asserted");
  assert.equal(temp.map((e) => e.event), ["Upper Non-critical going high", "Upper Critical going high", "Upper Non-recoverable going high"]);
  assert.match(temp[2]!.detail!, /Reading 91 > Threshold 90 degrees C/);
  assert.ok(got.lastId! > settled.lastId!);
  const again = value(await ipmi.selSince(got.lastId));
  assert.equal([again.entries.length, again.lastId], [0, got.lastId]);
  await h.setTemp("bmc1", 40);
});
Sel.run();

const Fru = suite("ipmi: FRU");
Fru("board and product areas", async () => {
  const [d] = value(await ipmi.fru());
  assert.equal([d!.id, d!.present, d!.fields["Board Serial"], d!.fields["Product Name"]], [0, true, "SN-bmc1", "bollard-node"]);
});
Fru.run();

const Secret = suite("ipmi: the password never on a command line");
Secret("a running ipmitool's /proc cmdline has no password; env has it (-E) or the file is named (-f)", async () => {
  await h.stopBmc("bmc2"); // an unanswered ipmitool lives ~2 s: time to read its /proc
  process.env.BTEST_BMC2_PW = h.password("bmc2");
  const seen: { cmdline: string; environ: string }[] = [];
  const watching: Runner = (file, args, env, timeoutMs) =>
    new Promise((resolve) => {
      const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"], timeout: timeoutMs });
      let out = "";
      let errs = "";
      child.stdout.on("data", (d) => (out += d));
      child.stderr.on("data", (d) => (errs += d));
      child.once("spawn", () => {
        setTimeout(() => {
          const rd = (f: string) => readFileSync(`/proc/${child.pid}/${f}`, "latin1").replace(/\0/g, " ");
          seen.push({ cmdline: rd("cmdline"), environ: rd("environ") });
        }, 300);
      });
      child.once("close", (code) => resolve({ code, stdout: out, stderr: errs, timedOut: false }));
    });
  const byEnv = new Ipmi({ ...h.config("bmc2"), passwordFile: undefined, passwordEnv: "BTEST_BMC2_PW" }, { log: nolog, run: watching, onCall });
  const byFile = new Ipmi(h.config("bmc2"), { log: nolog, run: watching, onCall });
  const [a, b] = [await byEnv.powerStatus(), await byFile.powerStatus()];
  assert.not.ok(a.ok || b.ok);
  assert.is(seen.length, 2);
  const pw = h.password("bmc2");
  for (const s of seen) {
    assert.match(s.cmdline, /^ipmitool -I lanplus -H 127\.0\.5\.2 -p 623 -U admin -C 3 -N 1 -R 1 /);
    assert.not.ok(s.cmdline.includes(pw), "password in cmdline");
  }
  assert.match(seen[0]!.cmdline, / -E chassis power status $/);
  assert.ok(seen[0]!.environ.includes(`IPMI_PASSWORD=${pw}`));
  assert.match(seen[1]!.cmdline, new RegExp(` -f ${join(h.root, "bmc2", "pw")} chassis power status $`));
  assert.not.ok(seen[1]!.environ.includes(pw));
  delete process.env.BTEST_BMC2_PW;
});
Secret("a password file readable by others is refused before ipmitool runs", async () => {
  const f = join(h.root, "bmc1", "pw-open");
  writeFileSync(f, `${h.password("bmc1")}\n`);
  chmodSync(f, 0o644);
  const n = calls.length;
  const r = await new Ipmi(h.config("bmc1", { passwordFile: f }), { log: nolog, onCall }).powerStatus();
  assert.ok(!r.ok && /is mode 644: expected 600/.test(r.error), JSON.stringify(r));
  assert.is(calls[calls.length - 1]!.ms < 5, true, `${calls.length - n} call, no ipmitool`);
});
Secret.run();

const Fail = suite("ipmi: failures are error values");
Fail("unreachable BMC: 'no answer' after timeout x (retries + 1)", async () => {
  const t0 = performance.now();
  const r = await new Ipmi(h.config("bmc2"), { log: nolog, onCall }).powerStatus();
  const took = performance.now() - t0;
  assert.ok(!r.ok && /^ipmitool chassis power status on 127\.0\.5\.2:623: no answer within 2\.\d s \(BMC unreachable or down\?\)/.test(r.error), JSON.stringify(r));
  assert.ok(took > 1800 && took < 4000, `${took} ms`);
});
Fail("wrong password: 'session refused', fast", async () => {
  process.env.BTEST_WRONG_PW = "not-the-password";
  const r = await new Ipmi({ ...h.config("bmc1"), passwordFile: undefined, passwordEnv: "BTEST_WRONG_PW" }, { log: nolog, onCall }).powerStatus();
  assert.ok(!r.ok && /session refused \(wrong user, password or cipher suite 3\?\)/.test(r.error), JSON.stringify(r));
  delete process.env.BTEST_WRONG_PW;
});
Fail("cipher suite 17 against ipmi_sim: named as the cause", async () => {
  const r = await new Ipmi(h.config("bmc1", { cipher: 17 }), { log: nolog, onCall }).powerStatus();
  assert.ok(!r.ok && /cipher suite 17 refused by the BMC/.test(r.error), JSON.stringify(r));
});
Fail("stop: no ipmi_sim left", async () => {
  const pids = h.pids();
  await h.stop();
  for (const pid of pids) assert.throws(() => process.kill(pid, 0));
  const ok = calls.filter((c) => c.ok).map((c) => c.ms).sort((a, b) => a - b);
  console.log(`  ${ok.length} successful ipmitool calls: median ${ok[ok.length >> 1]!.toFixed(1)} ms, max ${ok[ok.length - 1]!.toFixed(1)} ms`);
});
Fail.run();
