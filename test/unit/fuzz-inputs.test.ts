// Bad input from outside, beyond the bus (fuzz.test.ts has the bus): config files, seed
// files, what a BMC answers (ipmitool's output and exit, through the adapter and fence level 1),
// what a switch answers (SNMP varbinds, through the adapter), requests on the control socket,
// and peers' readiness bodies (issue 17 item 5). Deterministic: SEED (default below) and
// FUZZ_INPUTS_PER_KIND cases per kind; a failure prints the seed and the input. None may throw
// out of its handler or crash the process; each bad input must come back as a clear error
// value (a message that names what was wrong) and be counted where the agent counts them.
//   SEED=7 node --import tsx test/unit/fuzz-inputs.test.ts
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { ReadyBody } from "../../agent/bus/messages.ts";
import { parseConfig } from "../../agent/config/load.ts";
import type { Logger } from "../../agent/env/env.ts";
import { setPowerConfirmed } from "../../agent/fence/ipmi.ts";
import { parseFru, parsePowerControl, parsePowerStatus, parseSdrElist, parseSdrList, parseSel, parseSensorList, selNewerThan } from "../../agent/hw/ipmi-parse.ts";
import { Ipmi, type RunOutput } from "../../agent/hw/ipmi.ts";
import { portsFromVarbinds, SnmpSwitch, type Varbind } from "../../agent/hw/snmp.ts";
import { makeSeeds, genOptions } from "../../agent/provision/seed-gen.ts";
import { parseSeed, renderSeed } from "../../agent/provision/seed.ts";
import { ControlServer } from "../../agent/runtime/control.ts";
import { rng } from "../sim/rng.ts";

const SEED = Number(process.env.SEED ?? 20261206);
const N = Number(process.env.FUZZ_INPUTS_PER_KIND ?? 1000);
const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };
const r = rng(SEED);
const int = (n: number) => Math.floor(r() * n);
const pick = <T,>(a: readonly T[]): T => a[int(a.length)]!;
const said = (what: string, input: unknown) => `${what} (SEED=${SEED}); input: ${JSON.stringify(input)?.slice(0, 400)}`;

// ---- text mutations: what a hand-edited or corrupted file looks like ----------------------
const WEIRD = [
  "", "~", "null", "true", "-1", "1e999", "0x1F", "9007199254740993", "NaN", ".inf", "[]", "{}", "[1, [2, [3]]]", "'", '"', "\\", "\0",
  "&a x", "*a", "&a [*a]", "!!binary aGVsbG8=", "!!js/function 'x'", "? k", "- - -", "x: y: z", "日本", "\u202e", "a".repeat(5000),
  "{a: 1, a: 2}", "<<: *a", "|", ">", "%YAML 1.2", "---", "...", "#", "  \t", "/etc/passwd", "../../x", "198.18.0.11:99999",
];
function mutateText(t: string): string {
  const lines = t.split("\n");
  const i = int(lines.length);
  switch (int(11)) {
    case 0: lines.splice(i, 1); break;
    case 1: lines.splice(i, 0, lines[int(lines.length)]!); break;
    case 2: { const j = int(lines.length); [lines[i], lines[j]] = [lines[j]!, lines[i]!]; break; }
    case 3: lines[i] = lines[i]!.replace(/:\s*(.*)$/, `: ${pick(WEIRD)}`); break;
    case 4: lines[i] = ` ${lines[i]}`; break;
    case 5: lines[i] = lines[i]!.replace(/^\s+/, ""); break;
    case 6: return t.slice(0, int(t.length));
    case 7: { const p = int(t.length); return t.slice(0, p) + String.fromCharCode(int(0x3000)) + t.slice(p + 1); }
    case 8: lines.splice(i, 0, `${pick(["x", "cluster", "bus", "tls", "ha", "readiness", "timing"])}: ${pick(WEIRD)}`); break;
    case 9: return Buffer.from(Array.from({ length: 1 + int(400) }, () => int(256))).toString("latin1");
    default: lines[i] = lines[i]!.replace(/[a-z_]+:/, `${pick(["__proto__", "constructor", "toString", "hasOwnProperty", "x"])}:`);
  }
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------
const Files = suite("fuzz: config and seed files");

const CONFIG = `
cluster:
  name: port-fms
  node: node1
  members:
    - { name: node1, address: "198.18.0.11:1883" }
    - { name: node2, address: "198.18.0.12:1883" }
    - { name: node3, address: "198.18.0.13:1883" }
  join: { token_file: /etc/bollard/join.token, timeout_ms: 3000 }
bus:
  username: node1
  broker: { password_file: /b/passwd, acl_file: /b/acl, pid_file: /b/pid }
  tls: { ca_file: /t/ca.crt, cert_file: /t/node.crt, key_file: /t/node.key }
state_dir: /var/lib/bollard
log: { level: info }
timing: { tick_ms: 50, heartbeat_ms: 200, peer_dead_ms: 1200, lease_ms: 2000, max_drift: 0.01 }
ha:
  nodes:
    node1: { address: 198.18.0.11, bmc: { host: 198.18.1.21, user: admin, password_file: /s/bmc1 }, ports: [{ switch: swa, port: swp1, nic: eth0 }] }
    node2: { address: 198.18.0.12, ports: [{ switch: swa, port: swp2 }] }
    node3: { address: 198.18.0.13 }
  switches:
    swa: { host: 198.18.1.31, write_community: private, v3: { user: u, auth_key: aaaaaaaa, priv_key: bbbbbbbb } }
  vip: { address: 198.18.0.10/24, iface: bond0 }
  anti_flap_ms: 600000
mysql: { user: bollard, password_file: /s/my, repl_password_file: /s/repl, start_cmd: [systemctl, start, mariadb] }
redis: { port: 6379, min_replicas_max_lag_s: 2 }
portal: { prefix: /n, services: [{ name: web, listen: "8080", backends: ["198.18.0.11:80"] }] }
alarms: { clear_after_ms: 10000, rules: { fan: { enabled: false } }, temperature: { warn_c: 70, crit_c: 80 } }
notify: { webhooks: [{ name: ops, url: "https://example.invalid/hook" }] }
metrics: { enabled: false }
hw: { poll_ms: 1000, host: { bonds: [{ name: bond0 }] } }
readiness: { fence_check_ms: 60000, check_max_age_ms: 180000 }
`;

Files("the sample config is valid (so mutations start from something real)", () => {
  const c = parseConfig(CONFIG, "sample.yaml", { secrets: false });
  assert.ok(c.ok, c.ok ? "" : c.errors.join("\n"));
});

Files(`${N} mutated config files: each valid, or refused with errors that name a path; none throws`, () => {
  let refused = 0;
  for (let i = 0; i < N; i++) {
    let text = CONFIG;
    for (let k = 1 + int(3); k > 0; k--) text = mutateText(text);
    let res;
    try {
      res = parseConfig(text, "fuzz.yaml", { secrets: false });
    } catch (e) {
      assert.unreachable(said(`parseConfig threw ${(e as Error).stack}`, text));
    }
    if (res!.ok) continue;
    refused++;
    const errs = res!.errors;
    assert.ok(errs.length > 0 && errs.every((x) => typeof x === "string" && x.length > 0 && x.length < 5000), said("an empty or unreadable error list", text));
    // "path: expected X, got Y", "path: unknown key ...", "fuzz.yaml: YAML syntax: ..."
    assert.ok(errs.every((x) => /^\S[^\n]*?: (expected|unknown key|YAML)/.test(x)), said(`an error that names no path or no expectation: ${errs.join(" | ")}`, text));
  }
  console.log(`  config: ${N} files, ${refused} refused`);
  assert.ok(refused > N / 3, "most mutations are refused");
});

const SEED_TEXT = renderSeed(makeSeeds(genOptions(["--cluster", "port-fms", "--out", "/x", "--nodes", "node1"]).o)[0]!, "fuzz");

Files(`${N} mutated seed files: each valid, or refused with errors; none throws`, () => {
  assert.ok(parseSeed(SEED_TEXT, "s").ok, "the sample seed is valid");
  let refused = 0;
  for (let i = 0; i < N; i++) {
    let text = SEED_TEXT;
    for (let k = 1 + int(3); k > 0; k--) text = mutateText(text);
    let res;
    try {
      res = parseSeed(text, "fuzz.seed.yaml");
    } catch (e) {
      assert.unreachable(said(`parseSeed threw ${(e as Error).stack}`, text));
    }
    if (res!.ok) continue;
    refused++;
    assert.ok(res!.errors.length > 0 && res!.errors.every((x) => typeof x === "string" && x.length > 0), said("no error text", text));
  }
  console.log(`  seed: ${N} files, ${refused} refused`);
  assert.ok(refused > N / 3);
});

Files.run();

// ---------------------------------------------------------------------------------------
const Bmc = suite("fuzz: what a BMC answers (ipmitool's output and exit code)");

const SAMPLES = [
  "Chassis Power is on\n", "Chassis Power Control: Down/Off\n",
  "Temp             | 40.000     | degrees C  | ok    | na        | na        | na        | 70.000    | 80.000    | 90.000    \nPSU1 Status      | 0x0        | discrete   | 0x0100| na        | na        | na        | na        | na        | na        \n",
  "Temp             | 01h | ok  |  7.1 | 40 degrees C\nPSU1 Status      | 04h | ok  | 10.1 | Presence detected\n",
  "   1 | 12/06/2026 | 05:00:00 | Temperature Temp | Upper Critical going high | Asserted | Reading 85 > Threshold 80 degrees C\nSEL has no entries\n",
  "FRU Device Description : Builtin FRU Device (ID 0)\n Board Mfg             : Acme\n Product Name          : X\nFRU Device Description : PSU (ID 2)\n Device not present (Invalid data field in request)\n",
];
function mutateOut(): string {
  const s = pick(SAMPLES);
  switch (int(6)) {
    case 0: return mutateText(s);
    case 1: return s.replace(/\|/g, () => pick(["|", "", "||", "| |"]));
    case 2: return s.split("\n").map((l) => (r() < 0.3 ? pick(WEIRD) : l)).join("\n");
    case 3: return Buffer.from(Array.from({ length: int(600) }, () => int(256))).toString("latin1");
    case 4: return s.replace(/\d+(\.\d+)?/g, () => pick(["-0", "1e308", "NaN", "99999999999999999999", "0x10", "", "1.2.3"]));
    default: return s.replace(/[A-Za-z]+/g, (w) => (r() < 0.2 ? pick(["__proto__", "constructor", "toString", "hasOwnProperty", w.toUpperCase()]) : w));
  }
}

Bmc(`${N} mutated outputs through every parser: a value or an error naming the command; none throws`, () => {
  const parsers: [string, (o: string) => { ok: boolean; error?: string }][] = [
    ["power status", parsePowerStatus], ["power control", (o) => parsePowerControl(o, "off")], ["sensor", parseSensorList],
    ["sdr elist", parseSdrElist], ["sdr list", parseSdrList], ["sel", parseSel], ["fru", parseFru],
  ];
  let errors = 0;
  for (let i = 0; i < N; i++) {
    const out = mutateOut();
    for (const [name, p] of parsers) {
      let res: { ok: boolean; error?: string } = { ok: false };
      try {
        res = p(out);
        if (name === "sel" && res.ok) selNewerThan((res as unknown as { value: Parameters<typeof selNewerThan>[0] }).value, int(3) ? int(100) : null);
      } catch (e) {
        assert.unreachable(said(`${name} parser threw ${(e as Error).stack}`, out));
      }
      if (!res.ok) {
        errors++;
        assert.match(res.error!, /^(power status|power off|sensor|sdr elist|sdr list|sel|fru): /, said(`${name}: an error that does not say what it parsed`, out));
      }
    }
  }
  console.log(`  BMC answers: ${N} outputs x 7 parsers, ${errors} errors`);
});

Bmc("FRU fields named like Object's own (constructor, toString) are kept as given", () => {
  const r1 = parseFru("FRU Device Description : Builtin FRU Device (ID 0)\n constructor : x\n toString : y\n __proto__ : z\n");
  assert.ok(r1.ok);
  if (r1.ok) {
    const f = r1.value[0]!.fields;
    assert.equal(Object.entries(f), [["constructor", "x"], ["toString", "y"], ["__proto__", "z"]]);
    assert.is(Object.getPrototypeOf(f), Object.prototype, "the prototype is untouched");
  }
});

Bmc(`${Math.round(N / 5)} BMCs answering anything through the adapter and fence level 1: always a result, never a throw`, async () => {
  let calls = 0;
  for (let i = 0; i < N / 5; i++) {
    const out: RunOutput = {
      code: pick([0, 0, 0, 1, 255, null]), stdout: mutateOut(), stderr: pick(["", "Error: Unable to establish IPMI v2 / RMCP+ session", "Invalid authentication algorithm", mutateOut()]),
      timedOut: r() < 0.05, ...(r() < 0.05 ? { spawnError: "ENOENT: spawn ipmitool ENOENT" } : {}),
    };
    const throwing = r() < 0.03;
    const ipmi = new Ipmi({ host: "127.0.5.1", user: "admin", passwordEnv: "FUZZ_PW" }, {
      log: quiet, env: { FUZZ_PW: "x" }, run: async () => { calls++; if (throwing) throw new Error("runner broke"); return out; },
    });
    for (const f of [() => ipmi.powerStatus(), () => ipmi.powerOff(), () => ipmi.sensors(), () => ipmi.sensors("sdr"), () => ipmi.selSince(int(2) ? 3 : null), () => ipmi.fru()]) {
      const res = (await f().catch((e: Error) => assert.unreachable(said(`the adapter threw ${e.stack}`, out)))) as { ok: boolean; error: string };
      assert.ok(res.ok || /^ipmitool .+ on 127\.0\.5\.1:623: /.test(res.error), said("an adapter error that does not name the command and the BMC", out));
    }
    const proof = await setPowerConfirmed(ipmi, "off", { clock: { now: () => 0, sleep: async () => undefined }, confirmMs: 0 });
    assert.is(proof.level, "ipmi");
    assert.ok(proof.ok === (out.code === 0 && !out.timedOut && !out.spawnError && !throwing && /Chassis Power Control: Down\/Off/.test(out.stdout) && /Chassis Power is off/i.test(out.stdout)), said(`fence level 1 judged wrongly: ${proof.detail}`, out));
  }
  console.log(`  BMC adapter: ${calls} ipmitool runs answered with garbage`);
});

Bmc.run();

// ---------------------------------------------------------------------------------------
const Snmp = suite("fuzz: what a switch answers (SNMP varbinds)");

const OIDS = ["1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.5", "1.3.6.1.2.1.2.2.1.7", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.2.2.1.10", "1.3.6.1.2.1.2.2.1.14", "1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.15", "1.3.6.1.2.1.31.1.1.1.18"];
const VALUES: (() => unknown)[] = [
  () => int(4), () => -int(99), () => 2 ** 53, () => NaN, () => Infinity, () => 1.5, () => null, () => undefined, () => "swp1", () => Buffer.from("swp" + int(9)),
  () => Buffer.alloc(int(12), 0xff), () => Buffer.from([0x80]), () => [], () => ({}), () => 10n,
];
function varbind(): Varbind {
  const base = pick(OIDS);
  const oid = pick([`${base}.${int(8)}`, `${base}.${int(8)}.9`, base, `${base}.x`, `${base}.-1`, `${base}.1e3`, "", "1.3", `${base}.${2 ** 40}`, pick(WEIRD)]);
  return { oid, type: pick([2, 4, 65, 66, 70, 128, 129, 130, 5, -1, 999]), value: pick(VALUES)() };
}
type Cb = (e: Error | null, vbs?: unknown) => void;

Snmp(`${N} random walks through portsFromVarbinds: ports or nothing; none throws`, () => {
  let ports = 0;
  for (let i = 0; i < N; i++) {
    const vbs = Array.from({ length: int(40) }, varbind);
    try {
      ports += portsFromVarbinds(vbs).length;
    } catch (e) {
      assert.unreachable(said(`portsFromVarbinds threw ${(e as Error).stack}`, vbs.map((v) => ({ ...v, value: String(v.value) }))));
    }
  }
  console.log(`  SNMP varbinds: ${N} walks, ${ports} ports made of them`);
});

Snmp(`${Math.round(N / 5)} switches answering anything through the adapter: always a result, never a throw`, async () => {
  let errors = 0;
  for (let i = 0; i < N / 5; i++) {
    const sw = new SnmpSwitch({ name: "swa", host: "127.0.5.10", version: "2c", community: "public", writeCommunity: "private", timeoutMs: 50, retries: 0 }, { log: quiet });
    const answer = (cb: Cb) => {
      const k = int(8);
      if (k === 0) return cb(Object.assign(new Error("RequestFailedError"), { name: "RequestFailedError", status: pick([2, 6, 7, 10, 16, 17, 5, 99, "x"]) }));
      if (k === 1) return cb(Object.assign(new Error("timed out"), { name: "RequestTimedOutError" }));
      if (k === 2) return cb(null, undefined);
      if (k === 3) return cb(null, pick([[], [[]], [null], "x", 7]));
      const rows = Array.from({ length: 1 + int(4) }, () => Array.from({ length: int(12) }, varbind));
      return cb(null, k === 4 ? rows.flat() : rows);
    };
    const fake = {
      get: (_o: string[], cb: Cb) => answer(cb), set: (_v: unknown, cb: Cb) => answer(cb),
      getBulk: (_o: string[], _n: number, _m: number, cb: Cb) => (r() < 0.02 ? (() => { throw new Error("session broke"); })() : answer(cb)),
      close() {}, on() {},
    };
    const sessions = (sw as unknown as { sessions: Map<string, unknown> }).sessions;
    sessions.set("r", fake);
    sessions.set("w", fake);
    for (const f of [() => sw.ports(), () => sw.ports("status"), () => sw.ifIndexOf("swp1"), () => sw.adminStatus(int(9)), () => sw.setAdminStatus(1, "down"), () => sw.checkWriteAccess(3)]) {
      sessions.set("r", fake);
      sessions.set("w", fake);
      const res = (await (f() as Promise<{ ok: boolean; error?: string }>).catch((e: Error) => assert.unreachable(said(`the SNMP adapter threw ${e.stack}`, i)))) as { ok: boolean; error?: string };
      if (!res.ok) {
        errors++;
        assert.match(res.error!, /^snmp swa 127\.0\.5\.10:161: /, said(`an error that does not name the switch: ${res.error}`, i));
      }
    }
    sw.close();
  }
  console.log(`  SNMP adapter: ${Math.round(N / 5)} switches, ${errors} error values`);
});

Snmp.run();

// ---------------------------------------------------------------------------------------
const Ctl = suite("fuzz: requests on the control socket");

Ctl(`${Math.round(N / 4)} odd requests (request lines, methods, paths, queries, bodies): each answered, counted, the agent still serves`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-ctl-fuzz-"));
  const sock = join(dir, "agent.sock");
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => void unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  const cmds: unknown[] = [];
  const srv = new ControlServer(sock, {
    status: () => ({ ok: true }),
    command: async (c) => (cmds.push(c), { status: "ok", epoch: 1 }),
    logs: async (p) => { if (p.node === "boom") throw new Error("no such node"); return { lines: [] }; },
    events: async () => ({ events: [] }),
    routes: {
      "GET /alarms": async (q) => ({ code: 200, body: { all: q.get("all") } }),
      "POST /alarms/ack": async (_q, b) => { if (typeof b !== "object" || b === null) return { code: 400, body: { status: "error", error: "body: expected {id, who}" } }; throw new Error("a route that breaks"); },
    },
  }, quiet);
  await srv.start();
  const raw = (text: string | Buffer) => new Promise<string>((res) => {
    const s = connect(sock);
    let out = "";
    s.on("data", (d) => (out += d.toString("latin1")));
    s.on("close", () => res(out));
    s.on("error", () => res(out));
    s.write(text, () => s.end());
    s.setTimeout(2000, () => s.destroy());
  });
  const METHODS = ["GET", "POST", "PUT", "DELETE", "OPTIONS", "get", "G\0T", "CONNECT", "PATCH"];
  const PATHS = ["/status", "/command", "/logs", "/events", "/alarms", "/alarms/ack", "/", "//x:99999", "//[::1", "/%zz", "/status?%", "/logs?n=-5&level=x", "/logs?n=1e9&node=boom", "/logs?level=debug&since=x", `/${"a".repeat(3000)}`, "*", "http://agent/status", "/status#x"];
  const BODIES = ["", "{", "null", "[]", '{"op":"assign","service":"mysql","node":"node2"}', '{"op":"rekey","node":"node1","pass":"$7$1$AAAA$' + "B".repeat(40) + '"}', '{"op":"nope"}', JSON.stringify({ op: "apply", why: "x".repeat(500) }), "\u0000\u0001", "x".repeat(70_000), '{"id":"x","who":"y"}'];
  let answered = 0;
  for (let i = 0; i < N / 4; i++) {
    let req: string;
    if (r() < 0.15) req = mutateText(`GET /status HTTP/1.1\r\nHost: agent\r\n\r\n`);
    else {
      const body = pick(BODIES);
      const head = [`${pick(METHODS)} ${pick(PATHS)}${r() < 0.2 ? "?" + pick(WEIRD) : ""} ${pick(["HTTP/1.1", "HTTP/1.0", "HTTP/9", ""])}`, "Host: agent"];
      if (r() < 0.8) head.push(`Content-Length: ${r() < 0.9 ? Buffer.byteLength(body) : pick([-1, 10 ** 12, "x", 3])}`);
      if (r() < 0.1) head.push("Transfer-Encoding: chunked");
      if (r() < 0.1) head.push(`X-Junk: ${pick(WEIRD)}`);
      req = `${head.join("\r\n")}\r\n\r\n${body}`;
    }
    const out = await raw(req);
    if (/^HTTP\/1\.[01] \d{3} /.test(out)) answered++;
    const st = /^HTTP\/1\.[01] (\d{3}) /.exec(out)?.[1];
    // 5xx only when a handler itself failed (a route that throws: 500; another node's logs: 504)
    if (st && Number(st) >= 500) assert.match(out, /"status":"error","error":"(a route that breaks|no such node)"/, said(`a 5xx that is not a handler's own failure: ${out.slice(0, 300)}`, req));
  }
  const after = await raw("GET /status HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
  const stats = srv.stats();
  await srv.stop();
  process.off("unhandledRejection", onUnhandled);
  rmSync(dir, { recursive: true, force: true });
  console.log(`  control socket: ${Math.round(N / 4)} requests, ${answered} answered with a status line, reached the agent's handler ${stats.requests}, refused by code ${JSON.stringify(stats.rejected)}; commands run ${cmds.length}`);
  assert.equal(unhandled.map(String), [], "no request ended in an unhandled rejection (it would end the agent)");
  assert.match(after, /^HTTP\/1\.1 200 /, "still serves /status");
  assert.ok(Object.values(stats.rejected).reduce((a, b) => a + b, 0) > 0, "refusals are counted");
  assert.ok(cmds.every((c) => typeof c === "object" && c !== null && "op" in c), "only valid commands reached the handler");
});

Ctl("regression: a request target Node accepts and URL does not (//host:99999) is a 400, not a crash", async () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-ctl-"));
  const sock = join(dir, "agent.sock");
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => void unhandled.push(e);
  process.on("unhandledRejection", onUnhandled);
  const srv = new ControlServer(sock, { status: () => ({}), command: async () => ({ status: "ok" }), logs: async () => ({}), events: async () => ({}) }, quiet);
  await srv.start();
  const out = await new Promise<string>((res) => {
    const s = connect(sock);
    let o = "";
    s.on("data", (d) => (o += d));
    s.on("close", () => res(o));
    s.write("GET //x:99999 HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n");
  });
  await srv.stop();
  process.off("unhandledRejection", onUnhandled);
  rmSync(dir, { recursive: true, force: true });
  assert.match(out, /^HTTP\/1\.1 400 /);
  assert.match(out, 'request target: expected a path, got \\"//x:99999\\"');
  assert.equal(unhandled, []);
  assert.equal(srv.stats().rejected, { 400: 1 });
});

Ctl.run();

// ---------------------------------------------------------------------------------------
const Ready = suite("fuzz: peers' readiness bodies (retained <node>/ready)");

Ready(`${N} mutated bodies: valid, or refused by the schema; none throws`, () => {
  const good = { v: 1, at: 1, fence: { node2: { ipmi: { ok: true, at: 1, detail: "x" } } }, semiSync: { on: true, clients: 2, at: 1 }, mem: { total: 1, available: 1 }, measured: { mysql: { at: 1, totalMs: 5, steps: { promote: 3 } } }, leaseWaitMs: null };
  assert.ok(ReadyBody.safeParse(good).success);
  let refused = 0;
  for (let i = 0; i < N; i++) {
    const b = structuredClone(good) as Record<string, unknown>;
    const keys = Object.keys(b);
    for (let k = 1 + int(2); k > 0; k--) b[pick([...keys, "x", "__proto__"])] = pick([null, -1, 1e400, "x", [], {}, { node1: { ports: { ok: "yes" } } }, { "Bad Name": {} }, 2 ** 60]);
    let res;
    try {
      res = ReadyBody.safeParse(JSON.parse(JSON.stringify(b)));
    } catch (e) {
      assert.unreachable(said(`ReadyBody threw ${(e as Error).stack}`, b));
    }
    if (!res!.success) refused++;
  }
  console.log(`  readiness bodies: ${N}, ${refused} refused`);
  assert.ok(refused > N / 2);
});

Ready.run();
