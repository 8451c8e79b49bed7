// hw/ipmi-shell: one long-lived `ipmitool shell` per BMC. ipmitool is replaced by a shell
// script that behaves as ipmitool 1.8.19's shell does on a pipe (prompt "ipmitool> ", the
// command line echoed, errors on stderr and no exit code per command), told by files in its
// directory to refuse a session, fail the commands of a given shell, hang, or exit. It logs
// each start, so a test sees how many shells were started and with which argv.
// (The real ipmitool against ipmi_sim: docs/hardware.md "Idle cost", measured.)
import { spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { Logger } from "../../agent/env/env.ts";
import { Ipmi } from "../../agent/hw/ipmi.ts";
import { IpmiShell, stripEcho } from "../../agent/hw/ipmi-shell.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const SENSOR = "Temp             | 40.000     | degrees C  | ok    | na        | na        | na        | 70.000    | 80.000    | 90.000    \n" +
  "Fan1             | 6000.000   | RPM        | ok    | 500.000   | 1000.000  | 2000.000  | na        | na        | na        \n";
const SEL = "   1 |  Pre-Init  |0000020454| Power Supply PSU1 Status | Presence detected | Asserted\n" +
  "   2 |  Pre-Init  |0000020460| Temperature Temp | Upper Critical going high | Asserted | Reading 85 > Threshold 80 degrees C\n";

const FAKE = (d: string) => `#!/bin/sh
D=${d}
n=$(( $(cat $D/starts.log 2>/dev/null | wc -l) + 1 ))
printf '%s\\n' "$*" >> $D/starts.log
[ -f $D/refuse ] && { echo "Error: Unable to establish IPMI v2 / RMCP+ session" >&2; exit 1; }
printf 'ipmitool> '
while IFS= read -r line; do
  [ -f $D/noecho ] || echo "$line"
  if grep -qx "$n" $D/stale 2>/dev/null; then
    echo "Get Device ID command failed" >&2; echo "Unable to open SDR for reading" >&2; printf 'ipmitool> '; continue
  fi
  [ -f $D/hang ] && exec sleep 60
  [ -f $D/die ] && { echo "Segmentation fault" >&2; exit 139; }
  case "$line" in
    sensor) cat $D/sensor ;;
    "sel elist") cat $D/sel ;;
    *) echo "Invalid command: $line" >&2 ;;
  esac
  [ -f $D/stderr ] && cat $D/stderr >&2
  printf 'ipmitool> '
done
`;

interface Ctx {
  dir: string;
  shells: IpmiShell[];
}

const s = suite<Ctx>("IpmiShell (a fake ipmitool shell)", {} as Ctx);

s.before.each((ctx) => {
  ctx.dir = mkdtempSync(join(tmpdir(), "bollard-ipmi-shell-"));
  ctx.shells = [];
  writeFileSync(join(ctx.dir, "ipmitool"), FAKE(ctx.dir));
  chmodSync(join(ctx.dir, "ipmitool"), 0o755);
  writeFileSync(join(ctx.dir, "pw"), "s3cret-password\n", { mode: 0o600 });
  writeFileSync(join(ctx.dir, "sensor"), SENSOR);
  writeFileSync(join(ctx.dir, "sel"), SEL);
});

s.after.each((ctx) => {
  for (const x of ctx.shells) x.close();
  rmSync(ctx.dir, { recursive: true, force: true });
});

const shell = (ctx: Ctx, o: { hardTimeoutMs?: number; idleMs?: number; wrapper?: string[] } = {}) => {
  const ipmi = new Ipmi({ host: "127.0.0.1", user: "admin", passwordFile: join(ctx.dir, "pw"), cipher: 3, ipmitool: join(ctx.dir, "ipmitool"), hardTimeoutMs: o.hardTimeoutMs }, { log: quiet });
  const x = new IpmiShell(ipmi, { log: quiet, idleMs: o.idleMs, wrapper: o.wrapper ?? [] });
  ctx.shells.push(x);
  return x;
};
const starts = (ctx: Ctx): string[] => (existsSync(join(ctx.dir, "starts.log")) ? readFileSync(join(ctx.dir, "starts.log"), "utf8").trim().split("\n") : []);
const touch = (ctx: Ctx, f: string, text = "") => writeFileSync(join(ctx.dir, f), text);
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
async function until(what: string, f: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setTimeout(r, 25));
  assert.ok(f(), what);
}

s("sensors and the SEL through one shell: one process, the echo stripped, the password not in argv", async (ctx) => {
  const x = shell(ctx);
  const a = await x.sensors();
  const b = await x.selSince(1);
  const c = await x.sensors();
  assert.ok(a.ok && c.ok && b.ok);
  assert.equal(a.ok && a.value.map((v) => [v.name, v.value, v.status]), [["Temp", 40, "ok"], ["Fan1", 6000, "ok"]]);
  assert.equal(b.ok && b.value.entries.map((e) => e.id), [2], "entries after id 1");
  assert.is(starts(ctx).length, 1, "one shell for the three commands");
  const argv = starts(ctx)[0]!;
  assert.match(argv, `-I lanplus -H 127.0.0.1 -p 623 -U admin -C 3 -N 1 -R 1 -f ${ctx.dir}/pw shell`);
  assert.not.match(argv, "s3cret");
  touch(ctx, "noecho");
  const d = await x.sensors();
  assert.equal(d.ok && d.value.length, 2, "an ipmitool without readline's echo reads the same");
});

s("a session gone stale (a BMC reset): the command is tried once more in a new shell, and succeeds", async (ctx) => {
  const x = shell(ctx);
  assert.ok((await x.sensors()).ok);
  touch(ctx, "stale", "1\n"); // shell number 1 now fails every command
  const r = await x.sensors();
  assert.ok(r.ok, r.ok ? "" : r.error);
  assert.is(starts(ctx).length, 2);
});

s("a BMC that fails in the new shell too: an error value naming the command and the BMC", async (ctx) => {
  const x = shell(ctx);
  assert.ok((await x.sensors()).ok);
  touch(ctx, "stale", "1\n");
  touch(ctx, "refuse");
  const r = await x.sensors();
  assert.is(r.ok, false);
  assert.match(r.ok ? "" : r.error, /^ipmitool sensor on 127\.0\.0\.1:623: .*Unable to establish IPMI v2/);
  assert.is(starts(ctx).length, 2, "retried once, not more");
  const again = await x.sensors();
  assert.is(again.ok, false, "the next call starts a shell again, which is refused again");
  assert.is(starts(ctx).length, 3);
});

s("a failure in a shell that never worked is not retried", async (ctx) => {
  touch(ctx, "stale", "1\n");
  const r = await shell(ctx).sensors();
  assert.is(r.ok, false);
  assert.match(r.ok ? "" : r.error, "Get Device ID command failed");
  assert.is(starts(ctx).length, 1);
});

s("an empty answer with stderr is a failure, not an empty list; without stderr it is an empty list", async (ctx) => {
  const x = shell(ctx);
  touch(ctx, "sensor", "");
  touch(ctx, "stderr", "Unable to open SDR for reading\n");
  const r = await x.sensors();
  assert.is(r.ok, false);
  assert.match(r.ok ? "" : r.error, "Unable to open SDR for reading");
  unlinkSync(join(ctx.dir, "stderr"));
  assert.equal(await x.sensors(), { ok: true, value: [] });
  touch(ctx, "sensor", SENSOR);
  touch(ctx, "stderr", "Unable to read sensor Fan3: Device Not Present\n");
  const w = await x.sensors();
  assert.ok(w.ok && w.value.length === 2, "readings with a warning on stderr are readings");
});

s("garbage from the BMC is an error value", async (ctx) => {
  touch(ctx, "sel", "\u0000\u0001 not a SEL at all\n");
  const r = await shell(ctx).selSince(null);
  assert.is(r.ok, false);
  assert.match(r.ok ? "" : r.error, "ipmitool sel elist on 127.0.0.1:623");
});

s("a shell that hangs is killed at the hard timeout; the next call gets a new one", async (ctx) => {
  const x = shell(ctx, { hardTimeoutMs: 300 });
  assert.ok((await x.sensors()).ok);
  const pid = x.pid()!;
  touch(ctx, "hang");
  touch(ctx, "refuse"); // the retry's new shell is refused: the error is the hang's
  const r = await x.sensors();
  assert.is(r.ok, false);
  assert.match(r.ok ? "" : r.error, /no (result|answer) within/);
  await until(`the hung shell ${pid} is killed`, () => !alive(pid));
  unlinkSync(join(ctx.dir, "hang"));
  unlinkSync(join(ctx.dir, "refuse"));
  assert.ok((await x.sensors()).ok);
});

s("a shell that exits during a command: an error value; the next call starts a new shell", async (ctx) => {
  const x = shell(ctx);
  touch(ctx, "die");
  const r = await x.sensors();
  assert.is(r.ok, false);
  assert.match(r.ok ? "" : r.error, "exit 139");
  unlinkSync(join(ctx.dir, "die"));
  assert.ok((await x.sensors()).ok);
  assert.is(starts(ctx).length, 2);
});

s("a shell unused for idleMs is replaced before the next command", async (ctx) => {
  const x = shell(ctx, { idleMs: -1 });
  assert.ok((await x.sensors()).ok);
  assert.ok((await x.sensors()).ok);
  assert.is(starts(ctx).length, 2);
});

s("close() kills the shell; later calls are error values and start nothing", async (ctx) => {
  const x = shell(ctx);
  assert.ok((await x.sensors()).ok);
  const pid = x.pid()!;
  x.close();
  await until(`shell ${pid} gone`, () => !alive(pid));
  assert.equal(await x.sensors(), { ok: false, error: "ipmitool sensor on 127.0.0.1:623: closed" });
  assert.is(starts(ctx).length, 1);
});

s("no password: an error value, nothing started", async (ctx) => {
  const ipmi = new Ipmi({ host: "127.0.0.1", user: "admin", ipmitool: join(ctx.dir, "ipmitool") }, { log: quiet });
  const r = await new IpmiShell(ipmi, { log: quiet, wrapper: [] }).sensors();
  assert.match(r.ok ? "" : r.error, "neither passwordFile nor passwordEnv");
  assert.equal(starts(ctx), []);
});

s("under setpriv --pdeathsig KILL (the default), the shell dies with the process that started it", async (ctx) => {
  if (!existsSync("/usr/bin/setpriv")) return console.log("    skipped: no /usr/bin/setpriv");
  // a parent process that starts a shell, prints its PID, and is then killed with SIGKILL
  const code = `
    const { Ipmi } = await import(${JSON.stringify(new URL("../../agent/hw/ipmi.ts", import.meta.url).href)});
    const { IpmiShell } = await import(${JSON.stringify(new URL("../../agent/hw/ipmi-shell.ts", import.meta.url).href)});
    const q = { debug() {}, info() {}, warn() {}, error() {}, child: () => q };
    const x = new IpmiShell(new Ipmi({ host: "127.0.0.1", user: "admin", passwordFile: ${JSON.stringify(join(ctx.dir, "pw"))}, ipmitool: ${JSON.stringify(join(ctx.dir, "ipmitool"))} }, { log: q }), { log: q });
    const r = await x.sensors();
    console.log(JSON.stringify({ ok: r.ok, pid: x.pid() }));
    setInterval(() => {}, 1000);`;
  const p = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  p.stdout!.on("data", (d) => (out += d));
  await until("the parent reports its shell", () => out.includes("\n"));
  const { ok, pid } = JSON.parse(out) as { ok: boolean; pid: number };
  assert.ok(ok && pid > 0 && alive(pid));
  assert.match(starts(ctx)[0]!, "shell", "setpriv ran the fake ipmitool");
  p.kill("SIGKILL");
  await until(`shell ${pid} killed with its parent`, () => !alive(pid));
});

s("stripEcho: only a first line equal to the command", () => {
  assert.is(stripEcho("sensor\nTemp | 1\n", "sensor"), "Temp | 1\n");
  assert.is(stripEcho("Temp | 1\n", "sensor"), "Temp | 1\n");
  assert.is(stripEcho("sensor", "sensor"), "");
});

s.run();
