// Real BMCs for tests: OpenIPMI's ipmi_sim (STYLE: "what the lab can run for real is tested
// for real"), one per address on loopback (127.0.5.1, 127.0.5.2, ... port 623), each with
//   - lan.conf: one LAN channel, user 2 "admin" with a random password, and chassis_control
//     pointing at a script that keeps the power state in a file (ipmi_sim runs
//     `SCRIPT NAME get power` -> "power:1|0" and `SCRIPT NAME set power 0|1`);
//   - an emu file: sensor 0 the watchdog (ipmi_sim wants it there), 1 Temp (polled every
//     second from a file, thresholds unc 70 / ucr 80 / unr 90), 2-3 Fan1/Fan2 (RPM = raw x 100,
//     lnc 2000 / lcr 1000 / lnr 500), 4 PSU1 Status (discrete: 0 presence, 1 failure);
//     SEL enabled; FRU 0 with board and product areas;
//   - an SDR repository compiled with sdrcomp into <state>/ipmi_sim/<name>/sdr.20.main
//     (LAB-NOTES: mixed-case id strings, entity 29 for fans);
//   - a console port (ipmi_sim_cmd(5)) for setting sensor values from the test.
// Every process is started and stopped by its PID; stop() removes the temp dir.
//
//   const h = await BmcHarness.start([{ name: "bmc1", host: "127.0.5.1" }]);
//   const ipmi = new Ipmi(h.config("bmc1"), { log });
//   await h.setTemp("bmc1", 85); h.power("bmc1"); await h.stopBmc("bmc1"); await h.stop();
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BmcConfig } from "../../agent/hw/ipmi.ts";

export interface BmcSpec {
  name: string;
  host: string;
  /** RMCP port; default 623 */
  port?: number;
}

interface Bmc extends BmcSpec {
  port: number;
  dir: string;
  password: string;
  consolePort: number;
  proc: ChildProcess | null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** A threshold sensor's SDR (type 1, IPMI 2.0 §43.1) in sdrcomp's syntax. */
function sdrThreshold(num: number, name: string, type: string, entity: string, unit: string, m: number, dir: "upper" | "lower", t: [number, number, number]): string {
  const keys = dir === "upper" ? ["unc", "uc", "unr"] : ["lnc", "lc", "lnr"];
  const edge = dir === "upper" ? "gh" : "gl";
  return [
    "sdr type 1", "\tsensor_owner_id 0x20", "\tsensor_owner_lun 0", "\tchannel_number 0", `\tsensor_number ${num}`,
    `\tentity_id ${entity}`, "\tentity_instance 1", "\tinit_scanning true", "\tinit_events true", "\tinit_thresholds true",
    "\tinit_sensor_type true", "\tdefault_event_gen_on true", "\tdefault_sensor_scan_on true", "\tsensor_auto_rearm true",
    "\tsensor_threshold_access settable", "\tsensor_event_msg_ctrl per_state", `\tsensor_type ${type}`, "\tevent_reading_type_code 1",
    ...keys.flatMap((k) => [`\treturn_${k} true`, `\tassert_${k}${edge} true`, `\tdeassert_${k}${edge} true`, `\t${k}_thrsh_settable true`]),
    ...keys.map((k, i) => `\t${k}_thresh ${t[i]}`),
    "\tanalog_data_format unsigned", "\trate_unit none", "\tmodifier_unit none", "\tpercentage false", `\tbase_unit ${unit}`,
    "\tmodifier_unit_code unspecified", "\tlinearization linear", `\tm ${m}`, "\ttolerance 0", "\tb 0", "\taccuracy 1",
    "\taccuracy_exp 0", "\tsensor_direction input", "\tr_exp 0", "\tb_exp 0", "\tsensor_maximum 255", "\tsensor_minimum 0",
    `\tid_string "${name}"`, "endsdr", "",
  ].join("\n");
}

export function sdrs(name: string): string {
  return [
    // Management controller locator (type 18); mixed-case id strings (all-caps get 6-bit packed)
    "sdr type 18", "\tdevice_slave_address 0x20", "\tdevice_channel_number 0", "\tchassis true", "\tipmb_event_gen false",
    "\tipmb_event_recv false", "\tfru_inventory true", "\tsel true", "\tsdr true", "\tsensor true", "\tentity_id system_board",
    "\tentity_instance 1", `\tid_string "Test ${name}"`, "endsdr",
    // Event-only watchdog (type 3), sensor 0
    "sdr type 3", "\tsensor_owner_id 0x20", "\tsensor_owner_lun 0", "\tchannel_number 0", "\tsensor_number 0",
    "\tentity_id system_board", "\tentity_instance 1", "\tsensor_type Watchdog_2", "\tevent_reading_type_code 0x6f",
    '\tid_string "Watchdog"', "endsdr", "",
    sdrThreshold(1, "Temp", "Temperature", "system_board", "degrees_C", 1, "upper", [70, 80, 90]),
    sdrThreshold(2, "Fan1", "Fan", "29", "RPM", 100, "lower", [20, 10, 5]),
    sdrThreshold(3, "Fan2", "Fan", "29", "RPM", 100, "lower", [20, 10, 5]),
    // PSU status (type 2, sensor-specific 6Fh): offsets 0 presence, 1 failure, 3 input lost
    "sdr type 2", "\tsensor_owner_id 0x20", "\tsensor_owner_lun 0", "\tchannel_number 0", "\tsensor_number 4",
    "\tentity_id power_supply", "\tentity_instance 1", "\tinit_scanning true", "\tinit_events true", "\tinit_sensor_type true",
    "\tdefault_event_gen_on true", "\tdefault_sensor_scan_on true", "\tsensor_auto_rearm true", "\tsensor_type Power_Supply",
    "\tevent_reading_type_code 0x6f",
    ...[0, 1, 3].flatMap((i) => [`\tassert_event${i} true`, `\tdeassert_event${i} true`, `\tevent${i}_state_ret true`]),
    '\tid_string "PSU1 Status"', "endsdr", "",
  ].join("\n");
}

/** FRU inventory (Platform Management FRU Information Storage Definition 1.0): common header,
 *  board info area and product info area, each padded to 8 bytes and zero-summed. */
export function fruData(name: string): number[] {
  const tl = (s: string) => [0xc0 | s.length, ...Buffer.from(s, "latin1")];
  const area = (body: number[]) => {
    while ((body.length + 1) % 8) body.push(0);
    body[1] = (body.length + 1) / 8;
    return [...body, (0x100 - (body.reduce((a, b) => a + b, 0) & 0xff)) & 0xff];
  };
  const board = area([1, 0, 0, 0, 0, 0, ...tl("Bollard Test"), ...tl("HC Node"), ...tl(`SN-${name}`), ...tl("PN-0042"), 0xc0, 0xc1]);
  const product = area([1, 0, 0, ...tl("Bollard Test"), ...tl("bollard-node"), ...tl("BN-1"), ...tl("1.0"), ...tl(`PS-${name}`), 0xc0, 0xc0, 0xc1]);
  const hdr = [1, 0, 0, 1, 1 + board.length / 8, 0, 0];
  return [...hdr, (0x100 - (hdr.reduce((a, b) => a + b, 0) & 0xff)) & 0xff, ...board, ...product];
}

export function emu(name: string, dir: string): string {
  const fru = fruData(name);
  return [
    "mc_setbmc 0x20",
    "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr",
    "sel_enable 0x20 1000 0x0a",
    "sensor_add 0x20 0 0 35 0x6f event-only",
    "sensor_set_event_support 0x20 0 0 enable scanning per-state 000000000001111 000000000000000 000000000001111 000000000000000",
    // threshold bytes: unr ucr unc lnr lcr lnc
    `sensor_add 0x20 0 1 0x01 0x01 poll 1000 file "${join(dir, "temp")}"`,
    "sensor_set_threshold 0x20 0 1 settable 111000 90 80 70 00 00 00",
    "sensor_set_event_support 0x20 0 1 enable scanning per-state 000111111000000 000111111000000 000111111000000 000111111000000",
    ...[2, 3].flatMap((n) => [
      `sensor_add 0x20 0 ${n} 0x04 0x01`,
      `sensor_set_threshold 0x20 0 ${n} settable 000111 00 00 00 5 10 20`,
      `sensor_set_event_support 0x20 0 ${n} enable scanning per-state 000000000111111 000000000111111 000000000111111 000000000111111`,
      `sensor_set_value 0x20 0 ${n} ${n === 2 ? 60 : 58} 0`,
    ]),
    "sensor_add 0x20 0 4 0x08 0x6f",
    "sensor_set_event_support 0x20 0 4 enable scanning per-state 000000000001011 000000000001011 000000000001011 000000000001011",
    "sensor_set_bit_clr_rest 0x20 0 4 0 1 0",
    `mc_add_fru_data 0x20 0 ${fru.length} data ${fru.map((b) => `0x${b.toString(16).padStart(2, "0")}`).join(" ")}`,
    "mc_enable 0x20",
    "",
  ].join("\n");
}

const POWER_SCRIPT = `#!/bin/sh
# chassis_control for a test BMC: NAME get power -> power:1|0; NAME set power 0|1 [reset 1]
d=$(dirname "$0")/$1; op=$2; shift 2
case $op in
  get) for p in "$@"; do case $p in
         power) echo "power:$(cat "$d/power")" ;;
         boot) echo "boot:default" ;;
         *) echo "Invalid parameter: $p"; exit 1 ;;
       esac; done ;;
  set) while [ $# -ge 2 ]; do case "$1 $2" in
         "power 0"|"power 1") echo "$2" >"$d/power.tmp" && mv "$d/power.tmp" "$d/power" ;;
         "reset 1") ;;
         boot\\ *|identify\\ *|"reset 0") ;;
         *) echo "Invalid parameter: $1 $2"; exit 1 ;;
       esac; shift 2; done ;;
  *) exit 1 ;;
esac
`;

export class BmcHarness {
  readonly root: string;
  private readonly bmcs = new Map<string, Bmc>();
  private readonly onExit = () => {
    for (const b of this.bmcs.values()) if (b.proc?.pid) try { process.kill(b.proc.pid, "SIGKILL"); } catch { /* gone */ }
    rmSync(this.root, { recursive: true, force: true });
  };

  private constructor() {
    this.root = mkdtempSync(join(tmpdir(), "bollard-bmc-"));
    process.on("exit", this.onExit); // a crashed test still leaves no ipmi_sim behind
    writeFileSync(join(this.root, "power.sh"), POWER_SCRIPT, { mode: 0o755 });
  }

  static async start(specs: BmcSpec[]): Promise<BmcHarness> {
    const h = new BmcHarness();
    try {
      for (const s of specs) {
        const dir = join(h.root, s.name);
        mkdirSync(join(h.root, "ipmi_sim", s.name), { recursive: true });
        mkdirSync(dir);
        const b: Bmc = { ...s, port: s.port ?? 623, dir, password: randomBytes(9).toString("base64url"), consolePort: await freePort(s.host), proc: null };
        h.bmcs.set(s.name, b);
        writeFileSync(join(dir, "temp"), "40\n");
        writeFileSync(join(dir, "power"), "1\n");
        writeFileSync(join(dir, "pw"), `${b.password}\n`, { mode: 0o600 });
        chmodSync(join(dir, "pw"), 0o600);
        writeFileSync(join(dir, `${s.name}.sdrs`), sdrs(s.name));
        execFileSync("sdrcomp", ["-o", join(h.root, "ipmi_sim", s.name, "sdr.20.main"), join(dir, `${s.name}.sdrs`)], { stdio: "pipe" });
        writeFileSync(join(dir, `${s.name}.emu`), emu(s.name, dir));
        writeFileSync(join(dir, "lan.conf"), [
          `name "${s.name}"`, "set_working_mc 0x20", "  startlan 1", `    addr ${s.host} ${b.port}`, "    priv_limit admin",
          ...["callback", "user", "operator", "admin"].map((p) => `    allowed_auths_${p} none md2 md5 straight`),
          `    guid ${randomBytes(16).toString("hex")}`, "  endlan",
          `  chassis_control "${join(h.root, "power.sh")} ${s.name}"`,
          `  user 2 true "admin" "${b.password}" admin 10 none md2 md5 straight`,
          `console ${s.host} ${b.consolePort}`, "",
        ].join("\n"), { mode: 0o600 });
        await h.startBmc(s.name);
      }
    } catch (e) {
      await h.stop();
      throw e;
    }
    return h;
  }

  private bmc(name: string): Bmc {
    const b = this.bmcs.get(name);
    if (!b) throw new Error(`no BMC "${name}"`);
    return b;
  }

  /** The adapter config for a BMC: password in a 0600 file, cipher suite 3 (ipmi_sim). */
  config(name: string, over: Partial<BmcConfig> = {}): BmcConfig {
    const b = this.bmc(name);
    return { host: b.host, port: b.port, user: "admin", passwordFile: join(b.dir, "pw"), cipher: 3, timeoutS: 1, retries: 1, ...over };
  }

  password(name: string): string {
    return this.bmc(name).password;
  }

  pid(name: string): number | null {
    return this.bmc(name).proc?.pid ?? null;
  }

  pids(): number[] {
    return [...this.bmcs.values()].flatMap((b) => (b.proc?.pid ? [b.proc.pid] : []));
  }

  /** The chassis power state as the chassis_control script keeps it. */
  power(name: string): "on" | "off" {
    return readFileSync(join(this.bmc(name).dir, "power"), "utf8").trim() === "1" ? "on" : "off";
  }

  setPower(name: string, state: "on" | "off"): void {
    writeFileSync(join(this.bmc(name).dir, "power"), state === "on" ? "1\n" : "0\n");
  }

  /** One ipmi_sim_cmd(5) line on the console port; resolves with what it printed. */
  console(name: string, line: string): Promise<string> {
    const b = this.bmc(name);
    return new Promise((resolve, reject) => {
      const sock = connect(b.consolePort, b.host);
      let out = "";
      let sent = false;
      const timer = setTimeout(() => { sock.destroy(); reject(new Error(`console ${name}: no prompt after "${line}"`)); }, 3000);
      sock.on("data", (d: Buffer) => {
        out += d.toString("latin1");
        if (!out.endsWith("> ")) return;
        if (!sent) {
          sent = true;
          out = "";
          sock.write(`${line}\n`);
        } else {
          clearTimeout(timer);
          sock.end();
          resolve(out.replace(/[\xff][\xfb-\xfe]./g, "").replace(/> $/, "").trim());
        }
      });
      sock.once("error", (e) => { clearTimeout(timer); reject(e); });
    });
  }

  /** Sets a sensor's raw value at once (`sensor_set_value mc lun num value generate-event`). */
  async setSensor(name: string, num: number, raw: number, event = true): Promise<void> {
    const out = await this.console(name, `sensor_set_value 0x20 0 ${num} ${raw} ${event ? 1 : 0}`);
    if (/error|invalid|unknown/i.test(out.replace(/^sensor_set_value.*$/m, ""))) throw new Error(`console ${name}: ${out}`);
  }

  /** Temp (sensor 1): writes the file the 1 s poll reads and sets the value at once. */
  async setTemp(name: string, celsius: number): Promise<void> {
    writeFileSync(join(this.bmc(name).dir, "temp"), `${celsius}\n`);
    await this.setSensor(name, 1, celsius);
  }

  /** Starts one BMC (again); resolves once its console accepts connections. */
  async startBmc(name: string): Promise<void> {
    const b = this.bmc(name);
    if (b.proc) return;
    const log = join(b.dir, "ipmi_sim.log");
    // SIGPIPE ignored (kept across exec): ipmi_sim writes its telnet greeting to each console
    // connection and died of SIGPIPE when a client reset the connection first (measured).
    const args = ["-n", "-c", join(b.dir, "lan.conf"), "-f", join(b.dir, `${name}.emu`), "-s", this.root];
    const child = spawn("sh", ["-c", 'trap "" PIPE; exec "$0" "$@"', "ipmi_sim", ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    const keep = (d: Buffer) => { if (text.length < 8192) text += d.toString(); };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    child.once("exit", () => {
      writeFileSync(log, text);
      if (b.proc === child) b.proc = null;
    });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
    b.proc = child;
    const t0 = Date.now();
    for (;;) {
      // Ready when the console prompts; closed with a FIN after the prompt, never a reset.
      const up = await new Promise<boolean>((r) => {
        const s = connect(b.consolePort, b.host);
        s.on("data", (d: Buffer) => { if (d.toString("latin1").endsWith("> ")) { s.end(); r(true); } });
        s.once("error", () => r(false));
        s.once("close", () => r(false));
      });
      if (up) return;
      if (!b.proc) throw new Error(`ipmi_sim ${name} exited at start: ${text.trim()}`);
      if (Date.now() - t0 > 5000) throw new Error(`ipmi_sim ${name}: console not up after 5 s: ${text.trim()}`);
      await sleep(10);
    }
  }

  /** Stops one BMC by its PID (SIGTERM, then SIGKILL after 2 s); resolves once it is gone. */
  async stopBmc(name: string): Promise<void> {
    const p = this.bmc(name).proc;
    if (!p?.pid) return;
    const gone = new Promise<void>((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once("exit", () => r())));
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), 2000);
    await gone;
    clearTimeout(t);
  }

  async stop(): Promise<void> {
    for (const name of this.bmcs.keys()) await this.stopBmc(name);
    process.off("exit", this.onExit);
    rmSync(this.root, { recursive: true, force: true });
  }
}
