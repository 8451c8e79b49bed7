// The hardware the console shows on screens 1 and 6, read by the console itself: every node's
// BMC (power status, temperature, fans, PSUs from `sdr elist`) and both switches' ports over
// SNMP, with the agent's adapters (hw/ipmi.ts, hw/snmp.ts) and the config's ha.nodes[*].bmc and
// ha.switches; this node's load, bond and addresses from the kernel. BMCs and switches are
// slow (ipmitool is a process per call), so they are read every 10 s and only while a screen
// that shows them is up. Nothing here throws: what cannot be read is left out ('-').
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { loadavg, networkInterfaces } from "node:os";
import { dirname, join } from "node:path";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { parseBonding } from "../hw/host.ts";
import { Ipmi } from "../hw/ipmi.ts";
import type { Sensor } from "../hw/ipmi-parse.ts";
import { SnmpSwitch } from "../hw/snmp.ts";
import type { Hardware, HwNode, HwPort, HwSwitch } from "./model.ts";

/** A logger that drops everything: the console's screen is its output. */
export const quietLog: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quietLog };

/** Temperature, fans and PSUs from a BMC's sensors. */
export function summarizeSensors(xs: Sensor[]): Pick<HwNode, "tempC" | "fans" | "psus"> {
  const temps = xs.filter((s) => /degrees C/i.test(s.unit) && s.value !== null).map((s) => s.value!);
  const fans = xs.filter((s) => /rpm/i.test(s.unit) && s.value !== null).map((s) => String(Math.round(s.value!)));
  const psus = xs
    .filter((s) => s.discrete && /psu|power supply/i.test(s.name))
    .map((s) => {
      const st = s.states ?? "";
      return /fail/i.test(st) ? "FAIL" : /lost/i.test(st) ? "LOST" : /presence detected/i.test(st) ? "ok" : st ? "ABSENT" : "?";
    });
  return { tempC: temps.length ? Math.max(...temps) : null, fans: fans.length ? fans.join("/") : null, psus: psus.length ? psus.join("/") : null };
}

/** This node's bond: /proc/net/bonding, else the lab's emulated bond (<node dir>/bond0.status). */
export function readBond(stateDir: string): Hardware["bond"] {
  const files: string[] = [];
  try {
    for (const b of readdirSync("/proc/net/bonding")) files.push(join("/proc/net/bonding", b));
  } catch {
    /* no bonding driver */
  }
  const lab = join(dirname(stateDir), "bond0.status");
  if (!files.length && existsSync(lab)) files.push(lab);
  for (const f of files) {
    try {
      const r = parseBonding(readFileSync(f, "utf8"));
      if (!r.ok) continue;
      const v = r.value;
      return { name: f.startsWith("/proc") ? f.split("/").pop()! : "bond0", mode: v.mode ?? v.modeText, active: v.activeSlave, slaves: v.slaves.map((s) => ({ name: s.name, mii: s.mii, failures: s.linkFailures })) };
    } catch {
      /* unreadable: try the next */
    }
  }
  return null;
}

export function readAddresses(): Hardware["addresses"] {
  const out: Hardware["addresses"] = [];
  for (const [iface, list] of Object.entries(networkInterfaces())) {
    if (iface === "lo") continue;
    for (const a of list ?? []) if (a.family === "IPv4" && a.cidr) out.push({ iface, cidr: a.cidr });
  }
  return out;
}

export class HwPoller {
  private readonly bmcs = new Map<string, Ipmi>();
  private readonly switches: SnmpSwitch[] = [];
  private reading = false;
  hw: Hardware;

  constructor(
    private readonly config: Config | null,
    private readonly stateDir: string,
    init: Hardware,
  ) {
    this.hw = init;
    const ha = config?.ha?.ha;
    if (!ha) return;
    for (const [n, v] of Object.entries(ha.nodes)) {
      if (v.bmc) {
        const b = v.bmc;
        this.bmcs.set(n, new Ipmi({ host: b.host, port: b.port, user: b.user, passwordFile: b.password_file, cipher: b.cipher, timeoutS: b.timeout_s, retries: b.retries }, { log: quietLog }));
      }
    }
    for (const [name, s] of Object.entries(ha.switches)) {
      this.switches.push(
        new SnmpSwitch(
          { name, host: s.host, port: s.port, version: s.version, community: s.community, writeCommunity: s.write_community, timeoutMs: s.timeout_ms, retries: 0,
            v3: s.v3 ? { user: s.v3.user, authKey: s.v3.auth_key, privKey: s.v3.priv_key, authProtocol: s.v3.auth_protocol, privProtocol: s.v3.priv_protocol } : undefined },
          { log: quietLog },
        ),
      );
    }
  }

  /** This node's cheap readings: load, bond, addresses. */
  readLocal(): void {
    const l = loadavg();
    this.hw = { ...this.hw, load: [l[0]!, l[1]!, l[2]!], bond: readBond(this.stateDir), addresses: readAddresses() };
  }

  /** BMCs and switches, all at once; resolves when every one answered or gave up. */
  async readRemote(wallNow: () => number): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      const nodes: Record<string, HwNode> = {};
      const bmcReads = [...this.bmcs].map(async ([n, ipmi]) => {
        const p = await ipmi.powerStatus();
        const s = p.ok ? await ipmi.sensors("sdr") : null;
        nodes[n] = {
          bmc: p.ok ? "ok" : p.error.replace(/^ipmitool [^:]+: /, ""),
          power: p.ok ? p.value : null,
          ...(s?.ok ? summarizeSensors(s.value) : { tempC: null, fans: null, psus: null }),
        };
      });
      const switches: HwSwitch[] = [];
      const ports: HwPort[] = [];
      const swReads = this.switches.map(async (sw) => {
        const r = await sw.ports();
        switches.push({ name: sw.cfg.name, host: sw.cfg.host, snmp: r.ok ? "ok" : r.error.replace(/^snmp [^:]+: /, "") });
        for (const [n, v] of Object.entries(this.config?.ha?.ha.nodes ?? {})) {
          for (const np of v.ports.filter((x) => x.switch === sw.cfg.name)) {
            const p = r.ok ? r.value.ports.find((x) => x.descr === np.port || x.name === np.port) : undefined;
            ports.push({ node: n, switch: sw.cfg.name, port: np.port, oper: p?.oper ?? null, admin: p?.admin ?? null });
          }
        }
      });
      await Promise.all([...bmcReads, ...swReads]);
      const order = this.switches.map((s) => s.cfg.name);
      switches.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
      this.hw = { ...this.hw, at: wallNow(), nodes, switches, ports };
    } finally {
      this.reading = false;
    }
  }

  close(): void {
    for (const s of this.switches) s.close();
  }
}
