// The lab's topology, services, BMCs, switches and faults, for real (no agent: LAB_NO_AGENT=1).
// Needs root and the lab's Debian packages; without them the suite is skipped with the reason.
// Prints figures: `up` time, power-off and power-on times.
//   node --import tsx test/lab/topology.test.ts
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const LAB = fileURLToPath(new URL("./lab", import.meta.url));
const S = process.env.LAB_STATE ?? "/run/bollard-lab";
const ENV = { ...process.env, LAB_NO_AGENT: "1", LAB_STATE: S };
const NODES = ["node1", "node2", "node3"] as const;
const DATA: Record<string, string> = { node1: "198.18.0.11", node2: "198.18.0.12", node3: "198.18.0.13", client: "198.18.0.100" };
const BMC: Record<string, string> = { node1: "198.18.1.21", node2: "198.18.1.22", node3: "198.18.1.23" };
const SWITCH_MGMT: Record<string, string> = { switchA: "198.18.1.31", switchB: "198.18.1.32" };

interface Run { code: number; out: string; err: string; ms: number }

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = ENV, timeoutMs = 60_000): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { env, encoding: "utf8", timeout: timeoutMs });
  return { code: r.status ?? -1, out: r.stdout ?? "", err: (r.stderr ?? "") + (r.error ? String(r.error) : ""), ms: performance.now() - t0 };
}
const lab = (...args: string[]) => run(LAB, args);
/** A command inside a lab namespace. */
const inNs = (ns: string, ...args: string[]) => run("ip", ["netns", "exec", ns, ...args]);
const ping = (from: string, to: string) => inNs(from, "ping", "-c", "1", "-W", "1", "-q", "-I", "bond0", to).code === 0;
const secret = (path: string) => readFileSync(path, "utf8").split("\n")[0]!;
const ok = (r: Run, what: string) => assert.is(r.code, 0, `${what}: exit ${r.code}\n${r.out}${r.err}`);

function ipmitool(from: string, node: string, ...args: string[]): Run {
  // The password travels in the environment only, as the fence code will do it (DESIGN §6).
  return run("ip", ["netns", "exec", from, "ipmitool", "-I", "lanplus", "-C", "3", "-H", BMC[node]!, "-U", "admin", "-E", ...args],
    { ...ENV, IPMI_PASSWORD: secret(`${S}/${node}/bmc.pass`) });
}

/** ifOperStatus (IF-MIB 1.3.6.1.2.1.2.2.1.8) of the port whose ifDescr is `port`. */
function operStatus(sw: string, port: string): number {
  const env = { ...ENV, MIBS: "" };
  const walk = (oid: string) => run("ip", ["netns", "exec", "mgmt", "snmpwalk", "-v2c", "-c", "public", "-On", "-Oq", SWITCH_MGMT[sw]!, oid], env);
  const descr = walk("1.3.6.1.2.1.2.2.1.2");
  ok(descr, `snmpwalk ifDescr on ${sw}`);
  const line = descr.out.split("\n").find((l) => l.trim().endsWith(`"${port}"`) || l.trim().endsWith(` ${port}`));
  assert.ok(line, `${sw} has no port ${port} in ifDescr:\n${descr.out}`);
  const index = line!.trim().split(/\s+/)[0]!.split(".").pop()!;
  const oper = walk(`1.3.6.1.2.1.2.2.1.8.${index}`);
  ok(oper, `snmpwalk ifOperStatus on ${sw}`);
  return Number(oper.out.trim().split(/\s+/).pop());
}

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) assert.unreachable(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const bondActive = (ns: string) => /Currently Active Slave: (\S+)/.exec(readFileSync(`${S}/${ns}/bond0.status`, "utf8"))?.[1];

function skipReason(): string | null {
  if (process.getuid?.() !== 0) return "needs root (network namespaces)";
  for (const b of ["ipmi_sim", "sdrcomp", "ipmitool", "snmpd", "snmpwalk", "mosquitto", "mariadbd", "redis-server", "nginx", "socat"]) {
    if (run("sh", ["-c", `command -v ${b}`]).code !== 0) return `needs ${b} (make lab installs the lab's packages)`;
  }
  if (!existsSync("/usr/lib/nginx/modules/ngx_stream_module.so")) return "needs libnginx-mod-stream";
  return null;
}

const Topo = suite("lab topology");
const skip = skipReason();
let upDone = false;

Topo.after(() => {
  if (upDone) lab("down");
});

if (skip) {
  console.log(`lab topology: skipped: ${skip}`);
  Topo.skip("lab up, faults and down", () => {});
} else {
  Topo("starts from a clean machine", () => {
    const r = lab("check-clean");
    assert.is(r.code, 0, `a lab (or its leftovers) is already on this machine; run test/lab/lab down first\n${r.err}`);
  });

  Topo("up builds the appliance", () => {
    const r = lab("up");
    upDone = true;
    ok(r, "lab up");
    console.log(`  figure: lab up in ${(r.ms / 1000).toFixed(1)} s`);
    ok(lab("up"), "a second up (idempotent)");
  });

  Topo("every node reaches the other nodes and the client over bond0", () => {
    for (const from of [...NODES, "client"]) {
      for (const to of [...NODES, "client"]) {
        if (from !== to) assert.ok(ping(from, DATA[to]!), `${from} -> ${to} (${DATA[to]})`);
      }
    }
  });

  Topo("mysql, redis, mosquitto and nginx answer in each node", () => {
    for (const n of NODES) {
      const ip = DATA[n]!;
      const redis = inNs(n, "redis-cli", "-h", ip, "ping");
      assert.is(redis.out.trim(), "PONG", `redis on ${n}: ${redis.err}`);
      const sql = inNs(n, "mariadb", "-h", ip, "-u", "bollard", `-p${secret(`${S}/secrets/mysql-bollard.pass`)}`, "-N", "-e",
        "SELECT @@server_id, @@log_bin, @@gtid_strict_mode, @@gtid_binlog_pos");
      ok(sql, `mariadb on ${n}`);
      assert.equal(sql.out.replace(/\n$/, "").split("\t"), [n.slice(4), "1", "1", ""], `mariadb on ${n}: server-id, log-bin, gtid_strict_mode, empty binlog`);
      // TLS: the node's certificate and the lab's CA (the broker's address is in its certificate)
      // (-p: with TLS options mosquitto_pub would otherwise dial 8883)
      const tls = ["-p", "1883", "--cafile", `${S}/${n}/tls/ca.crt`, "--cert", `${S}/${n}/tls/node.crt`, "--key", `${S}/${n}/tls/node.key`];
      ok(inNs(n, "mosquitto_pub", "-h", ip, ...tls, "-u", n, "-P", secret(`${S}/${n}/bus.pass`), "-q", "1",
        "-t", `bollard/v1/lab/${n}/hb`, "-m", "lab"), `mosquitto on ${n}`);
      const bad = inNs(n, "mosquitto_pub", "-h", ip, ...tls, "-u", n, "-P", "wrong", "-t", `bollard/v1/lab/${n}/hb`, "-m", "x");
      assert.is.not(bad.code, 0, `mosquitto on ${n} refuses a wrong password`);
      assert.match(bad.err, /not authori[sz]ed|bad user ?name or password/i, `refused by the broker, not unreachable: ${bad.err}`);
      const noCert = inNs(n, "mosquitto_pub", "-h", ip, "-p", "1883", "--cafile", `${S}/${n}/tls/ca.crt`, "-u", n, "-P", secret(`${S}/${n}/bus.pass`), "-t", `bollard/v1/lab/${n}/hb`, "-m", "x");
      assert.is.not(noCert.code, 0, `mosquitto on ${n} refuses a client without a certificate, right password or not`);
      assert.not.match(noCert.err, /Connection refused$/m, `refused by TLS, not unreachable: ${noCert.err}`);
      const http = inNs(n, "curl", "-sf", `http://${ip}:8099/lab/health`);
      assert.is(http.out.trim(), `${n} nginx ok`, `nginx on ${n}: ${http.err}`);
    }
  });

  Topo("nodes reach BMCs and switch SNMP agents over mgmt; node2's BMC says power on", () => {
    const r = ipmitool("node1", "node2", "chassis", "power", "status");
    ok(r, "ipmitool power status from node1");
    assert.match(r.out, /Chassis Power is on/);
    for (const sw of ["switchA", "switchB"]) {
      const s = run("ip", ["netns", "exec", "node3", "snmpget", "-v2c", "-c", "public", SWITCH_MGMT[sw]!, "1.3.6.1.2.1.1.5.0"], { ...ENV, MIBS: "" });
      ok(s, `snmpget sysName of ${sw} from node3`);
      assert.match(s.out, new RegExp(`"${sw}"`));
    }
  });

  Topo("power node2 off through its BMC stops the node; on brings redis back", async () => {
    assert.ok(inNs("node2", "true").code === 0 && run("ip", ["netns", "pids", "node2"]).out.trim() !== "", "node2 runs processes");
    const off = lab("power", "node2", "off");
    ok(off, "lab power node2 off");
    console.log(`  figure: power off through the BMC in ${off.ms.toFixed(0)} ms (ipmitool to processes gone)`);
    assert.is(run("ip", ["netns", "pids", "node2"]).out.trim(), "", "no process left in node2");
    assert.not.ok(ping("node1", DATA.node2!), "node2's address no longer answers");
    assert.match(ipmitool("node1", "node2", "chassis", "power", "status").out, /Chassis Power is off/);
    const on = lab("power", "node2", "on");
    ok(on, "lab power node2 on");
    const ms = await until("redis on node2 after power on",
      () => inNs("node1", "redis-cli", "-h", DATA.node2!, "ping").out.trim() === "PONG", 20_000);
    console.log(`  figure: power on to redis answering in ${(on.ms + ms).toFixed(0)} ms`);
    await until("mariadb on node2", () => inNs("node2", "mariadb", "-h", DATA.node2!, "-u", "bollard",
      `-p${secret(`${S}/secrets/mysql-bollard.pass`)}`, "-e", "SELECT 1").code === 0, 20_000);
  });

  Topo("link switchA node1 down: bond0 moves to eth1 and node1 stays reachable", async () => {
    assert.is(bondActive("node1"), "eth0");
    ok(lab("link", "switchA", "node1", "down"), "link down");
    const ms = await until("node1's bond on eth1", () => bondActive("node1") === "eth1", 2000);
    console.log(`  figure: bond0 failover seen in ${ms.toFixed(0)} ms`);
    for (const from of ["node2", "node3", "client"]) assert.ok(ping(from, DATA.node1!), `${from} -> node1`);
    ok(lab("link", "switchA", "node1", "up"), "link up");
  });

  Topo("switch switchA down: every node and the client stay reachable", async () => {
    ok(lab("switch", "switchA", "down"), "switch down");
    for (const n of [...NODES, "client"]) await until(`${n}'s bond on eth1`, () => bondActive(n) === "eth1", 2000);
    for (const from of [...NODES, "client"]) {
      for (const to of [...NODES, "client"]) if (from !== to) assert.ok(ping(from, DATA[to]!), `${from} -> ${to}`);
    }
    ok(lab("switch", "switchA", "up"), "switch up");
  });

  Topo("sensor temp 85 shows in ipmitool and writes a SEL entry", async () => {
    ok(lab("sensor", "node1", "temp", "85"), "lab sensor");
    await until("Temp 85 in ipmitool sensor", () => /Temp\s+\|\s+85\.000\s+\|\s+degrees C\s+\|\s+cr/.test(ipmitool("node1", "node1", "sensor").out), 3000);
    assert.match(ipmitool("node1", "node1", "sdr", "type", "Temperature").out, /Temp\s+\|.*\|\s+ucr\s+\|.*85 degrees C/);
    await until("SEL entry", () => /Temperature #0x01 \| Upper Critical going high \| Asserted/.test(ipmitool("node1", "node1", "sel", "list").out), 3000);
    ok(lab("sensor", "node1", "fan2", "800"), "fan2 800 RPM");
    await until("Fan2 lower critical", () => /Fan2\s+\|\s+800\.000\s+\|\s+RPM\s+\|\s+cr/.test(ipmitool("node1", "node1", "sensor").out), 3000);
    ok(lab("sensor", "node1", "psu1", "fail"), "psu1 fail");
    await until("PSU1 failure in the SEL", () => /Power Supply #0x04 \| Failure detected \| Asserted/.test(ipmitool("node1", "node1", "sel", "list").out), 3000);
    for (const [name, v] of [["temp", "40"], ["fan2", "6000"], ["psu1", "ok"]]) ok(lab("sensor", "node1", name!, v!), `restore ${name}`);
  });

  Topo("snmp ifOperStatus on switchB shows swp3 down right after link switchB node3 down", () => {
    assert.is(operStatus("switchB", "swp3"), 1, "up before");
    ok(lab("link", "switchB", "node3", "down"), "link down");
    assert.is(operStatus("switchB", "swp3"), 2, "down at once (ifTable cache off)");
    ok(lab("link", "switchB", "node3", "up"), "link up");
    assert.is(operStatus("switchB", "swp3"), 1, "up again");
  });

  Topo("partition node3 cuts it from node1 on data and mgmt; heal restores", () => {
    ok(lab("partition", "node3"), "partition");
    assert.not.ok(ping("node3", DATA.node1!), "node3 -> node1 (data)");
    assert.not.ok(ping("node1", DATA.node3!), "node1 -> node3 (data)");
    assert.is.not(inNs("node1", "ping", "-c", "1", "-W", "1", "-q", "198.18.1.13").code, 0, "node1 -> node3 (mgmt)");
    assert.ok(ping("client", DATA.node3!), "the client still reaches node3");
    assert.is(ipmitool("node1", "node3", "chassis", "power", "status").code, 0, "node1 still reaches node3's BMC");
    ok(lab("heal"), "heal");
    assert.ok(ping("node3", DATA.node1!), "node3 -> node1 after heal");
    assert.ok(ping("node1", DATA.node3!), "node1 -> node3 after heal");
  });

  Topo("down removes everything; check-clean passes", () => {
    const r = lab("down");
    ok(r, "lab down");
    upDone = false;
    console.log(`  figure: lab down in ${(r.ms / 1000).toFixed(1)} s`);
    ok(lab("check-clean"), "check-clean");
    ok(lab("down"), "a second down (idempotent)");
  });
}

Topo.run();
