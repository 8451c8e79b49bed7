// `bollard seed apply FILE [--root DIR]`: what first boot (/usr/lib/bollard/firstboot) does
// with a node's seed. Renders, from the seed and this node's secrets, every file that makes
// the image this node: the agent's config, hostname and hosts, systemd-networkd's bond0 and
// management NIC, the node settings of mosquitto, MariaDB, Redis and chrony. Idempotent:
// run again (after an upgrade into the other root slot) it writes the same files and keeps
// the secrets it made before. The shell part (partition growth, mariadb-install-db, the
// hostname of the running system) stays in the firstboot script.
//
// Secrets, in <root>/var/lib/bollard/secrets (0700; the data partition, so they survive a
// root slot switch). Cluster-wide ones are derived from the join token, so every node
// agrees without talking: HMAC-SHA256(token, "bollard-secret\n<cluster>\n<purpose>").
//   join.token              the token (cluster.join.token_file)
//   mysql-repl.password     derived: MariaDB replication user 'repl'
//   redis.password          derived: Redis requirepass and masterauth
//   mysql-bollard.password  random, this node only: MariaDB 'bollard'@'localhost' (the agent)
//   bmc-<node>.password     from the seed, for fencing that node
//   snmp-<switch>.community from the seed, the switch's write community
//   tls/ca.crt, tls/node.crt, tls/node.key   from the seed: the bus's TLS (the key 0600)
import { createHash, createHmac, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../config/load.ts";
import { atomicWrite } from "../env/store.ts";
import type { CommandContext } from "../cli/types.ts";
import { DEFAULT_BUS_PORT, SEED_FILE_NAME, addrOf, describeSeed, hostOf, readSeed, seedErrors, seedTiming, type Seed } from "./seed.ts";

export const STATE_DIR = "/var/lib/bollard";
export const SECRETS_DIR = `${STATE_DIR}/secrets`;
/** the bus's TLS files: the cluster CA's certificate, this node's certificate and key */
export const TLS_DIR = `${SECRETS_DIR}/tls`;

export interface RenderedFile {
  /** absolute path on the node */
  path: string;
  text: string;
  mode: number;
  /** written only when missing (secrets made once, files the agent rewrites) */
  keep?: boolean;
}

/** A cluster-wide secret every node derives from the join token. */
export function derivedSecret(token: string, cluster: string, purpose: string): string {
  return createHmac("sha256", Buffer.from(token, "utf8")).update(`bollard-secret\n${cluster}\n${purpose}`).digest("hex").slice(0, 40);
}

const ipv4ToInt = (a: string) => a.split(".").reduce((n, o) => n * 256 + Number(o), 0);

/** MariaDB server_id: unique in the cluster because data addresses are (IPv4 as a number). */
export function serverId(dataAddress: string): number {
  const a = addrOf(dataAddress);
  if (a.includes(":")) return (createHash("sha256").update(a).digest().readUInt32BE(0) % 4294967294) + 1;
  return ipv4ToInt(a) || 1;
}

/** "198.18.0.11/24" -> "198.18.0.0/255.255.255.0" (a MariaDB account host); IPv6: "%". */
export function subnetHost(c: string): string {
  const a = addrOf(c);
  if (a.includes(":")) return "%";
  const len = Number(c.slice(c.indexOf("/") + 1));
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const dot = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".");
  return `${dot((ipv4ToInt(a) & mask) >>> 0)}/${dot(mask)}`;
}

/** "198.18.0.11/24" -> "198.18.0.0/24"; IPv6 as given. */
export function networkOf(c: string): string {
  const a = addrOf(c);
  if (a.includes(":")) return c;
  const len = Number(c.slice(c.indexOf("/") + 1));
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const n = (ipv4ToInt(a) & mask) >>> 0;
  return `${[24, 16, 8, 0].map((s) => (n >>> s) & 255).join(".")}/${len}`;
}

const q = (v: string) => JSON.stringify(v);

/** Every file first boot writes for this seed. `local` holds this node's random secrets. */
export function renderNode(s: Seed, local: { mysqlBollard: string }): RenderedFile[] {
  const n = s.network;
  const dataIp = addrOf(n.data.address);
  const self = s.members.find((m) => m.name === s.node);
  const busPort = self ? Number(self.address.slice(self.address.lastIndexOf(":") + 1)) : DEFAULT_BUS_PORT;
  const ownBus = self?.address ?? `${dataIp.includes(":") ? `[${dataIp}]` : dataIp}:${busPort}`;
  const peers = s.members.filter((m) => m.name !== s.node);
  const derived = (p: string) => derivedSecret(s.join_token, s.cluster, p);
  const head = `written by bollard first boot from the seed of ${s.node} (cluster ${s.cluster}); re-written by: bollard seed apply ${STATE_DIR}/${SEED_FILE_NAME}`;
  const files: RenderedFile[] = [];
  const add = (path: string, text: string, mode = 0o644, keep = false) => files.push({ path, text, mode, keep });

  add(
    "/etc/bollard/bollard.yaml",
    [
      `# bollard agent config, ${head}`,
      "# Keys: docs/config.md. The bus password comes from the join (derived from the token for a founder).",
      "cluster:",
      `  name: ${s.cluster}`,
      `  node: ${s.node}`,
      "  members:",
      ...s.members.map((m) => `    - { name: ${m.name}, address: ${q(m.address)} }`),
      "  join:",
      `    token_file: ${SECRETS_DIR}/join.token`,
      `    peers: [${(peers.length ? peers : s.members).map((m) => q(m.address)).join(", ")}]`,
      `    address: ${q(ownBus)}`,
      "bus:",
      "  broker:                 # this node's mosquitto: the agent writes these and SIGHUPs it",
      `    password_file: ${STATE_DIR}/mosquitto/passwd`,
      `    acl_file: ${STATE_DIR}/mosquitto/acl`,
      "    pid_file: /run/mosquitto/mosquitto.pid",
      "  tls:                    # every broker requires a certificate of the cluster CA; the agent checks theirs",
      `    ca_file: ${TLS_DIR}/ca.crt`,
      `    cert_file: ${TLS_DIR}/node.crt`,
      `    key_file: ${TLS_DIR}/node.key`,
      `state_dir: ${STATE_DIR}`,
      "web:                     # the web console (docs/web.md): no account exists until 'bollard users add NAME --role admin'",
      "  enabled: true",
      "  listen: [\"0.0.0.0:443\"] # the management address, and the VIP on the node holding it; the certificate is the bus's (seeded from the cluster CA)",
      "log:",
      "  level: info",
      ...(s.timing ? ["timing:", ...Object.entries(s.timing).map(([k, v]) => `  ${k}: ${v}`)] : []),
      "",
    ].join("\n"),
    0o640,
  );
  if (s.timing) {
    // the agent's systemd watchdog and start timeout stretch with the cluster's timings (the
    // fence deadline, DESIGN §5, counts the watchdog): on a machine slow enough to need them,
    // 5 s and 120 s are too short
    const scale = Math.max(1, seedTiming(s).leaseMs / 2000);
    add(
      "/etc/systemd/system/bollard-agent.service.d/timing.conf",
      [`# ${head}`, "[Service]", `WatchdogSec=${Math.round(5 * scale)}s`, `TimeoutStartSec=${Math.round(120 * scale)}s`, ""].join("\n"),
    );
  }
  add("/etc/hostname", `${s.node}\n`);
  add(
    "/etc/hosts",
    [
      `# ${head}`,
      "127.0.0.1\tlocalhost",
      "::1\t\tlocalhost ip6-localhost ip6-loopback",
      `${dataIp}\t${s.node}`,
      ...peers.map((m) => `${hostOf(m.address)}\t${m.name}`),
      "",
    ].join("\n"),
  );
  add("/etc/resolv.conf", [`# ${head}`, ...(n.dns.length ? n.dns.map((d) => `nameserver ${d}`) : ["# no DNS server in the seed"]), ""].join("\n"));

  // systemd-networkd: bond0 active-backup over the data NICs, one to each switch; MII link
  // monitoring every 100 ms (a pulled cable or a dead switch port fails over within it).
  const net = (name: string, lines: string[]) => add(`/etc/systemd/network/${name}`, [`# ${head}`, ...lines, ""].join("\n"));
  net("10-bollard-bond0.netdev", ["[NetDev]", "Name=bond0", "Kind=bond", "", "[Bond]", "Mode=active-backup", "MIIMonitorSec=100ms", "UpDelaySec=0", "DownDelaySec=0", "PrimaryReselectPolicy=failure"]);
  // The first data NIC (to switch A) is the primary: with both links up every node sends
  // through the same switch, whichever NIC the kernel enslaved first (seen: enp0s4 active on
  // one VM of the image cluster test). PrimaryReselectPolicy=failure: no swap back when it returns.
  n.data.interfaces.forEach((nic, i) =>
    net(`20-bollard-bond0-port${i + 1}.network`, ["[Match]", `Name=${nic}`, "", "[Network]", "Bond=bond0", ...(i === 0 ? ["PrimarySlave=true"] : []), "LinkLocalAddressing=no", "IPv6AcceptRA=no"]),
  );
  net("30-bollard-bond0.network", [
    "[Match]", "Name=bond0", "", "[Network]", `Address=${n.data.address}`, ...(n.data.gateway ? [`Gateway=${n.data.gateway}`] : []),
    "LinkLocalAddressing=no", "IPv6AcceptRA=no", "ConfigureWithoutCarrier=yes", "", "[Link]", "RequiredForOnline=yes",
  ]);
  if (n.mgmt) {
    net("40-bollard-mgmt.network", [
      "[Match]", `Name=${n.mgmt.interface}`, "", "[Network]", `Address=${n.mgmt.address}`, ...(n.mgmt.gateway ? [`Gateway=${n.mgmt.gateway}`] : []),
      ...n.dns.map((d) => `DNS=${d}`), "LinkLocalAddressing=no", "IPv6AcceptRA=no", "ConfigureWithoutCarrier=yes", "", "[Link]", "RequiredForOnline=no",
    ]);
  }

  add("/etc/mosquitto/conf.d/bollard-listener.conf", [`# ${head}`, `listener ${busPort} ${dataIp}`, ...mosquittoTlsLines({ ca: `${TLS_DIR}/ca.crt`, cert: `${TLS_DIR}/node.crt`, key: `${TLS_DIR}/node.key` }), ""].join("\n"));
  add(
    "/etc/mysql/mariadb.conf.d/61-bollard-node.cnf",
    [`# ${head}`, "[mariadbd]", `server_id = ${serverId(n.data.address)}`, `bind_address = 127.0.0.1,${dataIp}`, `report_host = ${s.node}`, ""].join("\n"),
  );
  add(
    "/etc/redis/bollard-node.conf",
    [
      `# ${head}`,
      `bind 127.0.0.1 ${dataIp}`,
      `replica-announce-ip ${dataIp}`,
      `requirepass ${derived("redis")}`,
      `masterauth ${derived("redis")}`,
      "",
    ].join("\n"),
    0o640,
  );
  add(
    "/etc/chrony/sources.d/bollard.sources",
    [`# ${head}`, ...n.ntp.map((h) => `server ${h} iburst`), ...peers.map((m) => `peer ${hostOf(m.address)} iburst`), ""].join("\n"),
  );
  add("/etc/chrony/conf.d/bollard.conf", [`# ${head}`, `# the other nodes may sync from this one (orphan mode, chrony.conf)`, `allow ${networkOf(n.data.address)}`, ""].join("\n"));

  const secret = (name: string, value: string, keep = false) => add(`${SECRETS_DIR}/${name}`, `${value}\n`, 0o600, keep);
  secret("join.token", s.join_token);
  secret("mysql-repl.password", derived("mysql-repl"));
  secret("redis.password", derived("redis"));
  secret("mysql-bollard.password", local.mysqlBollard, true);
  for (const [node, b] of Object.entries(s.bmc)) if (b.password) secret(`bmc-${node}.password`, b.password);
  for (const w of s.switches) if (w.write_community) secret(`snmp-${w.name}.community`, w.write_community);
  if (s.login.root_password_hash) secret("login.hash", s.login.root_password_hash);
  add(`${TLS_DIR}/ca.crt`, s.tls.ca_cert.trim() + "\n", 0o644);
  add(`${TLS_DIR}/node.crt`, s.tls.cert.trim() + "\n", 0o644);
  add(`${TLS_DIR}/node.key`, s.tls.key.trim() + "\n", 0o600);
  // Run once by first boot through `mariadbd --bootstrap`, out of the binary log: these
  // accounts exist on every node and must not become GTIDs that differ between them.
  add(
    "/run/bollard/mariadb-init.sql",
    [
      "SET sql_log_bin = 0;",
      "FLUSH PRIVILEGES;",
      `CREATE USER IF NOT EXISTS 'bollard'@'localhost' IDENTIFIED BY '${local.mysqlBollard}';`,
      "GRANT ALL PRIVILEGES ON *.* TO 'bollard'@'localhost' WITH GRANT OPTION;",
      `CREATE USER IF NOT EXISTS 'repl'@'${subnetHost(n.data.address)}' IDENTIFIED BY '${derived("mysql-repl")}';`,
      `GRANT REPLICATION SLAVE, REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'repl'@'${subnetHost(n.data.address)}';`,
      "",
    ].join("\n"),
    0o600,
  );
  // the broker starts before the agent has written its users: empty files, never overwritten
  add(`${STATE_DIR}/mosquitto/passwd`, "", 0o600, true);
  add(`${STATE_DIR}/mosquitto/acl`, "# written by the bollard agent from the committed cluster config\n", 0o644, true);
  add(
    `${STATE_DIR}/node.env`,
    [`# ${head}`, `NODE=${s.node}`, `CLUSTER=${s.cluster}`, `DATA_IP=${dataIp}`, `MGMT_IP=${n.mgmt ? addrOf(n.mgmt.address) : ""}`, ""].join("\n"),
  );
  return files;
}

/**
 * The listener's TLS (mosquitto.conf(5)): a certificate of the cluster CA required of every
 * client, the password on top (use_identity_as_username off: the password file follows the
 * register, so a removed member is locked out at the next reload; docs/bus.md), TLS 1.2 or later.
 */
export function mosquittoTlsLines(f: { ca: string; cert: string; key: string }): string[] {
  return [
    `cafile ${f.ca}`, `certfile ${f.cert}`, `keyfile ${f.key}`,
    "require_certificate true", "use_identity_as_username false", "tls_version tlsv1.2",
  ];
}

/** Writes the files under `root` (atomically, durably). Returns the paths written. */
export function writeFiles(root: string, files: RenderedFile[]): string[] {
  const written: string[] = [];
  for (const f of files) {
    const at = join(root, f.path);
    if (f.keep && existsSync(at)) continue;
    const dir = dirname(at);
    mkdirSync(dir, { recursive: true, mode: /\/(secrets|mosquitto|tls)$/.test(dir) ? 0o700 : 0o755 });
    atomicWrite(at, f.text, { durable: true, mode: f.mode });
    chmodSync(at, f.mode);
    written.push(f.path);
  }
  return written;
}

export async function applyCommand(args: string[], ctx: CommandContext): Promise<number> {
  let v: { root?: string };
  let pos: string[];
  try {
    ({ values: v, positionals: pos } = parseArgs({ args, allowPositionals: true, strict: true, options: { root: { type: "string" } } }));
  } catch (e) {
    ctx.io.err(`bollard seed apply: ${(e as Error).message}`);
    return 2;
  }
  if (pos.length !== 1) {
    ctx.io.err("bollard: expected: seed apply FILE [--root DIR]");
    return 2;
  }
  const file = pos[0]!;
  const root = v.root ?? "/";
  const r = await readSeed(file);
  if (!r.ok) {
    ctx.io.err(seedErrors(file, r.errors));
    return 2;
  }
  const s = r.seed;
  const prev = join(root, SECRETS_DIR, "mysql-bollard.password");
  const mysqlBollard = existsSync(prev) ? readFileSync(prev, "utf8").trim() : randomBytes(18).toString("base64url");
  const files = renderNode(s, { mysqlBollard });
  files.push({ path: `${STATE_DIR}/${SEED_FILE_NAME}`, text: readFileSync(file, "utf8"), mode: 0o600 });
  // the agent's config must be one the agent accepts (it is checked again at every start)
  const yaml = files.find((f) => f.path === "/etc/bollard/bollard.yaml")!;
  const c = parseConfig(yaml.text, yaml.path, { secrets: false });
  if (!c.ok) {
    ctx.io.err(`bollard seed apply: the config rendered from ${file} is not valid (a bug):\n${c.errors.map((e) => `  ${e}`).join("\n")}`);
    return 1;
  }
  const written = writeFiles(root, files);
  ctx.io.out(`${describeSeed(s)}\nwrote ${written.length} files under ${root}: ${written.join(" ")}`);
  return 0;
}

// ---- SHA-512 crypt ("$6$"), Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512"
// (https://www.akkadia.org/drepper/SHA-crypt.txt), what /etc/shadow and login(1) use.
const ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

export function sha512Crypt(password: string, salt: string, rounds = 5000): string {
  const P = Buffer.from(password, "utf8");
  const S = Buffer.from(salt.slice(0, 16), "utf8");
  const sha = (...parts: Buffer[]) => {
    const h = createHash("sha512");
    for (const p of parts) h.update(p);
    return h.digest();
  };
  const B = sha(P, S, P);
  const a = createHash("sha512").update(P).update(S);
  let i: number;
  for (i = P.length; i > 64; i -= 64) a.update(B);
  a.update(B.subarray(0, i));
  for (i = P.length; i > 0; i >>= 1) a.update(i & 1 ? B : P);
  const A = a.digest();
  const DP = sha(...Array<Buffer>(P.length).fill(P));
  const Pb = Buffer.concat([...Array<Buffer>(Math.floor(P.length / 64)).fill(DP), DP.subarray(0, P.length % 64)]);
  const DS = sha(...Array<Buffer>(16 + A[0]!).fill(S));
  const Sb = Buffer.concat([...Array<Buffer>(Math.floor(S.length / 64)).fill(DS), DS.subarray(0, S.length % 64)]);
  let C = A;
  for (let r = 0; r < rounds; r++) {
    const h = createHash("sha512");
    h.update(r & 1 ? Pb : C);
    if (r % 3) h.update(Sb);
    if (r % 7) h.update(Pb);
    h.update(r & 1 ? C : Pb);
    C = h.digest();
  }
  let out = "";
  const b64 = (b2: number, b1: number, b0: number, n: number) => {
    let w = (b2 << 16) | (b1 << 8) | b0;
    for (let k = 0; k < n; k++, w >>= 6) out += ITOA64[w & 0x3f];
  };
  for (let g = 0; g < 21; g++) {
    const t = [C[g]!, C[g + 21]!, C[g + 42]!];
    const [x, y, z] = g % 3 === 0 ? t : g % 3 === 1 ? [t[1]!, t[2]!, t[0]!] : [t[2]!, t[0]!, t[1]!];
    b64(x!, y!, z!, 4);
  }
  b64(0, 0, C[63]!, 2);
  return `$6$${rounds === 5000 ? "" : `rounds=${rounds}$`}${S.toString("utf8")}$${out}`;
}
