// `bollard seed --cluster NAME --out DIR [...]`: writes one seed per node (seed.ts) for a new
// cluster, or for nodes joining one (--token-file with the cluster's token, --founders).
// Without addresses it uses the lab's address plan (test/lab/lib.sh): the i-th node has
// data 198.18.0.(10+i)/24, mgmt 198.18.1.(10+i)/24 and its BMC at 198.18.1.(20+i).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_TIMING, type Timing } from "../cluster/timing.ts";
import { NAME_RE, TIMING_KEYS } from "../config/schema.ts";
import type { CommandContext } from "../cli/types.ts";
import { DEFAULT_BUS_PORT, SEED_VERSION, SeedFile, addrOf, isCidr, newJoinToken, parseSeed, renderSeed, type Seed } from "./seed.ts";
import { sha512Crypt } from "./seed-apply.ts";
import { PkiError, issueNodeCert, makeCa, type KeyCert } from "./pki.ts";

export const GEN_USAGE = `usage: bollard seed --cluster NAME --out DIR [options]

Writes DIR/<node>.seed.yaml (mode 0600) for each node: everything a freshly flashed node
needs to name itself, set up its network and form or join its cluster. LISTs are comma-
separated; NAME=VALUE lists name the nodes.

  --cluster NAME           the cluster's name (required)
  --out DIR                where to write the seeds (required)
  --nodes LIST             the nodes to write seeds for (default node1,node2,node3)
  --founders LIST          the cluster's first members (default: --nodes); a node not among
                           them joins the running cluster through the founders' brokers
  --token-file FILE        the join token of an existing cluster (default: a new random one)
  --ca-dir DIR             the cluster CA (ca.crt, ca.key) that signs the nodes' certificates
                           (default: a new CA, written to OUT/ca/; required with --token-file:
                           a joining node needs a certificate of its cluster's CA)
  --addresses LIST         data addresses on bond0, NAME=ADDR/PREFIX (default 198.18.0.(10+i)/24)
  --mgmt LIST              management addresses, NAME=ADDR/PREFIX (default 198.18.1.(10+i)/24)
  --data-gateway IP        --mgmt-gateway IP     default routes (default: none)
  --dns LIST               --ntp LIST            servers (default: none; the nodes then
                                                 keep time among themselves)
  --vip ADDR/PREFIX        the portal's virtual address
  --data-nics LIST         the two data NICs of every node (default eno1,eno2)
  --mgmt-nic NAME          the management NIC (default eno3)
  --bmc LIST               BMCs, NAME=[USER@]HOST[:PORT] (default admin@198.18.1.(20+i))
  --bmc-password-file FILE the BMCs' password; --bmc-cipher-suite N (default 17)
  --switches LIST          SNMP switches, NAME=HOST[:PORT] (default: none)
  --switch-ports LIST      each node's port on the switches, NAME=IFDESCR
  --snmp-read-community S  (default public); --snmp-write-community-file FILE
  --login-password-file F  root's console password (default: a random one, written to
                           DIR/login-password.txt); the seeds hold only its hash
  --timing-scale N         every cluster timing N times its default (1-50): for slow
                           machines such as emulated test VMs, never for a real cluster
  --force                  overwrite existing seed files`;

export interface GenOptions {
  cluster: string;
  nodes: string[];
  founders: string[];
  token: string;
  addresses: Record<string, string>;
  mgmt: Record<string, string>;
  dataGateway?: string;
  mgmtGateway?: string;
  dns: string[];
  ntp: string[];
  vip?: string;
  dataNics: string[];
  mgmtNic: string;
  bmc: Record<string, { host: string; port: number; user: string }>;
  bmcPassword?: string;
  bmcCipherSuite: number;
  switches: { name: string; host: string; port: number }[];
  switchPorts: Record<string, string>;
  snmpRead: string;
  snmpWrite?: string;
  rootPasswordHash: string;
  timingScale?: number;
  /** the cluster CA: signs every node's certificate (its key is never put in a seed) */
  ca: KeyCert;
}

class GenError extends Error {}

const list = (v: string | undefined) => (v ?? "").split(",").map((x) => x.trim()).filter(Boolean);

/** "a=1,b=2" -> { a: "1", b: "2" }, every name a node name. */
function pairs(flag: string, v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list(v)) {
    const at = item.indexOf("=");
    if (at < 1) throw new GenError(`--${flag}: expected NAME=VALUE, got "${item}"`);
    const k = item.slice(0, at);
    if (!NAME_RE.test(k)) throw new GenError(`--${flag}: "${k}" is not a node name`);
    out[k] = item.slice(at + 1);
  }
  return out;
}

/** Every millisecond timing of the defaults times `n` (max_drift stays). */
export function scaledTiming(n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, file] of Object.entries(TIMING_KEYS) as [keyof Timing, string][]) if (k !== "maxDrift") out[file] = Math.round(DEFAULT_TIMING[k] * n);
  return out;
}

const withPrefix = (a: string) => (a.includes("/") ? a : `${a}/24`);

/** The seeds for `o.nodes`, validated. */
export function makeSeeds(o: GenOptions): Seed[] {
  const everyone = [...new Set([...o.founders, ...o.nodes])];
  const dataOf = (n: string) => o.addresses[n] ?? `198.18.0.${10 + everyone.indexOf(n) + 1}/24`;
  const mgmtOf = (n: string) => o.mgmt[n] ?? `198.18.1.${10 + everyone.indexOf(n) + 1}/24`;
  const bus = (n: string) => {
    const a = addrOf(dataOf(n));
    return `${a.includes(":") ? `[${a}]` : a}:${DEFAULT_BUS_PORT}`;
  };
  const bmc: Seed["bmc"] = {};
  for (const n of everyone) {
    const b = o.bmc[n] ?? { host: `198.18.1.${20 + everyone.indexOf(n) + 1}`, port: 623, user: "admin" };
    bmc[n] = { ...b, ...(o.bmcPassword ? { password: o.bmcPassword } : {}), cipher_suite: o.bmcCipherSuite };
  }
  return o.nodes.map((node) => {
    // one certificate for the bus and the web console (docs/web.md "Certificate"): the browser
    // reaches a node at its data or management address, and the portal's VIP
    const nodeCert = issueNodeCert(o.ca, { cluster: o.cluster, node, ips: [addrOf(dataOf(node)), addrOf(mgmtOf(node)), ...(o.vip ? [addrOf(withPrefix(o.vip))] : [])] });
    const raw = {
      version: SEED_VERSION,
      cluster: o.cluster,
      node,
      join_token: o.token,
      members: o.founders.map((f) => ({ name: f, address: bus(f) })),
      network: {
        data: { interfaces: o.dataNics, address: dataOf(node), ...(o.dataGateway ? { gateway: o.dataGateway } : {}) },
        mgmt: { interface: o.mgmtNic, address: mgmtOf(node), ...(o.mgmtGateway ? { gateway: o.mgmtGateway } : {}) },
        dns: o.dns,
        ntp: o.ntp,
        ...(o.vip ? { vip: o.vip } : {}),
      },
      bmc,
      switches: o.switches.map((w) => ({
        ...w,
        read_community: o.snmpRead,
        ...(o.snmpWrite ? { write_community: o.snmpWrite } : {}),
        ports: o.switchPorts,
      })),
      ...(o.timingScale && o.timingScale !== 1 ? { timing: scaledTiming(o.timingScale) } : {}),
      tls: { ca_cert: o.ca.cert, cert: nodeCert.cert, key: nodeCert.key },
      login: { root_password_hash: o.rootPasswordHash },
    };
    // through the text form: what is written is what is checked
    const r = parseSeed(renderSeed(SeedFile.parse(raw), "bollard seed"), `${node}.seed.yaml`);
    if (!r.ok) throw new GenError(r.errors.join("\n"));
    return r.seed;
  });
}

function readSecret(flag: string, file: string): string {
  try {
    const v = readFileSync(file, "utf8").replace(/\r?\n$/, "");
    if (!v) throw new GenError(`--${flag}: ${file} is empty`);
    return v;
  } catch (e) {
    if (e instanceof GenError) throw e;
    throw new GenError(`--${flag}: cannot read ${file}: ${(e as Error).message}`);
  }
}

function hostPortOf(flag: string, v: string, defPort: number): { host: string; port: number } {
  const m = /^([A-Za-z0-9.-]+)(?::(\d+))?$/.exec(v);
  if (!m) throw new GenError(`--${flag}: expected HOST[:PORT], got "${v}"`);
  return { host: m[1]!, port: m[2] ? Number(m[2]) : defPort };
}

/** The CA in DIR (ca.crt and ca.key), checked to be one. */
function readCa(dir: string): KeyCert {
  const ca = { cert: readSecret("ca-dir", join(dir, "ca.crt")), key: readSecret("ca-dir", join(dir, "ca.key")) };
  if (!/BEGIN CERTIFICATE/.test(ca.cert) || !/BEGIN (EC |RSA )?PRIVATE KEY/.test(ca.key)) throw new GenError(`--ca-dir: ${dir} does not hold a CA (ca.crt and ca.key, PEM)`);
  return ca;
}

/** Parses the command line into GenOptions (reading the files it names) and the out dir. */
export function genOptions(args: string[], rand: (n: number) => Buffer = randomBytes): { o: GenOptions; out: string; force: boolean; password: string | null; caCreated: boolean } {
  const s = { type: "string" } as const;
  const { values: v, positionals } = parseArgs({
    args,
    allowPositionals: true,
    strict: true,
    options: {
      cluster: s, out: s, nodes: s, founders: s, "token-file": s, addresses: s, mgmt: s, "data-gateway": s, "mgmt-gateway": s,
      dns: s, ntp: s, vip: s, "data-nics": s, "mgmt-nic": s, bmc: s, "bmc-password-file": s, "bmc-cipher-suite": s,
      switches: s, "switch-ports": s, "snmp-read-community": s, "snmp-write-community-file": s, "login-password-file": s, "timing-scale": s, "ca-dir": s,
      force: { type: "boolean" },
    },
  });
  if (positionals.length) throw new GenError(`unexpected "${positionals[0]}"`);
  if (!v.cluster) throw new GenError("--cluster NAME is required");
  if (!NAME_RE.test(v.cluster)) throw new GenError(`--cluster: "${v.cluster}" is not a name (a-z, 0-9, -, starting with a letter)`);
  if (!v.out) throw new GenError("--out DIR is required");
  const nodes = v.nodes ? list(v.nodes) : ["node1", "node2", "node3"];
  const founders = v.founders ? list(v.founders) : nodes;
  for (const n of [...nodes, ...founders]) if (!NAME_RE.test(n)) throw new GenError(`"${n}" is not a node name (a-z, 0-9, -, starting with a letter)`);
  if (!nodes.length) throw new GenError("--nodes: expected at least one node");
  const addresses = pairs("addresses", v.addresses);
  const mgmt = pairs("mgmt", v.mgmt);
  for (const [flag, m] of [["addresses", addresses], ["mgmt", mgmt]] as const) {
    for (const [k, a] of Object.entries(m)) {
      m[k] = withPrefix(a);
      if (!isCidr(m[k]!)) throw new GenError(`--${flag}: ${k}=${a} is not an address (ADDR/PREFIX)`);
    }
  }
  const bmc: GenOptions["bmc"] = {};
  for (const [k, b] of Object.entries(pairs("bmc", v.bmc))) {
    const at = b.lastIndexOf("@");
    bmc[k] = { user: at > 0 ? b.slice(0, at) : "admin", ...hostPortOf("bmc", b.slice(at + 1), 623) };
  }
  const switches = Object.entries(pairs("switches", v.switches)).map(([name, hp]) => ({ name, ...hostPortOf("switches", hp, 161) }));
  const suite = v["bmc-cipher-suite"] === undefined ? 17 : Number(v["bmc-cipher-suite"]);
  if (!Number.isInteger(suite) || suite < 0 || suite > 17) throw new GenError(`--bmc-cipher-suite: expected 0-17, got "${v["bmc-cipher-suite"]}"`);
  const scale = v["timing-scale"] === undefined ? 1 : Number(v["timing-scale"]);
  if (!Number.isFinite(scale) || scale < 1 || scale > 50) throw new GenError(`--timing-scale: expected a number from 1 to 50, got "${v["timing-scale"]}"`);
  const token = v["token-file"] ? readSecret("token-file", v["token-file"]).trim() : newJoinToken(rand);
  if (v["token-file"] && !v["ca-dir"]) {
    throw new GenError("--ca-dir DIR is required with --token-file: a node joining a running cluster needs a certificate of that cluster's CA (the ca/ directory written beside the founders' seeds)");
  }
  const ca = v["ca-dir"] ? readCa(v["ca-dir"]) : makeCa(v.cluster);
  const password = v["login-password-file"] ? readSecret("login-password-file", v["login-password-file"]) : null;
  const generated = password ?? rand(12).toString("base64url");
  const o: GenOptions = {
    cluster: v.cluster,
    nodes,
    founders,
    token,
    addresses,
    mgmt,
    dataGateway: v["data-gateway"],
    mgmtGateway: v["mgmt-gateway"],
    dns: list(v.dns),
    ntp: list(v.ntp),
    vip: v.vip ? withPrefix(v.vip) : undefined,
    dataNics: v["data-nics"] ? list(v["data-nics"]) : ["eno1", "eno2"],
    mgmtNic: v["mgmt-nic"] ?? "eno3",
    bmc,
    bmcPassword: v["bmc-password-file"] ? readSecret("bmc-password-file", v["bmc-password-file"]) : undefined,
    bmcCipherSuite: suite,
    switches,
    switchPorts: pairs("switch-ports", v["switch-ports"]),
    snmpRead: v["snmp-read-community"] ?? "public",
    snmpWrite: v["snmp-write-community-file"] ? readSecret("snmp-write-community-file", v["snmp-write-community-file"]) : undefined,
    rootPasswordHash: sha512Crypt(generated, rand(12).toString("base64").replace(/[+=]/g, ".").slice(0, 16)),
    timingScale: scale,
    ca,
  };
  return { o, out: v.out, force: v.force ?? false, password: password === null ? generated : null, caCreated: !v["ca-dir"] };
}

export async function generateCommand(args: string[], ctx: CommandContext): Promise<number> {
  if (args.includes("--help") || args.includes("-h")) {
    ctx.io.out(GEN_USAGE);
    return 0;
  }
  let seeds: Seed[];
  let parsed: ReturnType<typeof genOptions>;
  try {
    parsed = genOptions(args);
    seeds = makeSeeds(parsed.o);
  } catch (e) {
    if (!(e instanceof GenError) && !(e instanceof PkiError) && !(e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) throw e;
    ctx.io.err(`bollard seed: ${(e as Error).message}\nrun "bollard seed --help" for usage`);
    return 2;
  }
  const { out, force, password } = parsed;
  const files = seeds.map((s) => join(out, `${s.node}.seed.yaml`));
  const caDir = join(out, "ca");
  if (parsed.caCreated) files.push(join(caDir, "ca.key"));
  const existing = files.filter((f) => existsSync(f));
  if (existing.length && !force) {
    ctx.io.err(`bollard seed: ${existing.join(", ")} already exist${existing.length === 1 ? "s" : ""}: not overwritten (--force overwrites; a cluster has one token)`);
    return 1;
  }
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const by = `bollard seed ${ctx.build.version} on ${new Date().toISOString().slice(0, 10)}`;
  seeds.forEach((s, i) => writeFileSync(files[i]!, renderSeed(s, by), { mode: 0o600 }));
  for (const [i, s] of seeds.entries()) ctx.io.out(`${files[i]}: node ${s.node}, data ${s.network.data.address}, mgmt ${s.network.mgmt?.address ?? "-"}`);
  if (parsed.caCreated) {
    mkdirSync(caDir, { recursive: true, mode: 0o700 });
    writeFileSync(join(caDir, "ca.key"), parsed.o.ca.key, { mode: 0o600 });
    writeFileSync(join(caDir, "ca.crt"), parsed.o.ca.cert, { mode: 0o644 });
    ctx.io.out(`${caDir}/: the cluster's CA (ca.key signs the certificate of every node added later: bollard seed --ca-dir ${caDir}); no node holds its key: keep it offline, with the seeds`);
  }
  if (password !== null) {
    const pw = join(out, "login-password.txt");
    writeFileSync(pw, `${password}\n`, { mode: 0o600 });
    ctx.io.out(`${pw}: root's console password on these nodes (the seeds hold only its hash); keep it safe`);
  }
  ctx.io.out(`cluster ${parsed.o.cluster}: founders ${parsed.o.founders.join(", ")}; the seeds hold its join token: keep them secret`);
  return 0;
}
