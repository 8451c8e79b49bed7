// The SNMP adapter (DESIGN §6): one switch, through net-snmp (npm), SNMP v2c or v3 (USM
// authPriv, RFC 3414/3826). It reads IF-MIB (RFC 2863) ports and sets ifAdminStatus, which
// fence level 2 uses to cut a node off both switches (DESIGN §5).
//   ifEntry  1.3.6.1.2.1.2.2.1     .2 ifDescr .5 ifSpeed .7 ifAdminStatus .8 ifOperStatus
//                                  .10 ifInOctets .13 ifInDiscards .14 ifInErrors
//                                  .16 ifOutOctets .19 ifOutDiscards .20 ifOutErrors
//   ifXEntry 1.3.6.1.2.1.31.1.1.1  .1 ifName .6 ifHCInOctets .10 ifHCOutOctets
//                                  .15 ifHighSpeed (Mb/s) .18 ifAlias
// Counter64 values arrive from net-snmp as big-endian Buffers of 1-8 bytes; they become bigint.
// A timeout, a refusal or a malformed answer is an error value naming the switch; nothing
// here throws. A session that failed is closed and made again on the next call.
// @ts-expect-error net-snmp ships no type declarations: the part used here is typed as NetSnmp below
import netSnmp from "net-snmp";
import type { Logger } from "../env/env.ts";
import { ADMIN, IF_ADMIN_STATUS, IF_DESCR, IF_NAME, PORT_COLUMNS, STATUS_COLUMNS, int, portsFromVarbinds, str, type AdminStatus, type PortReading, type Varbind } from "./ifmib.ts";

// the IF-MIB part, for the adapter's users
export * from "./ifmib.ts";

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };
const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const err = <T = never>(error: string): Result<T> => ({ ok: false, error });

type Cb = (e: Error | null, vbs?: Varbind[]) => void;
interface Session {
  get(oids: string[], cb: Cb): void;
  set(vbs: Varbind[], cb: Cb): void;
  getBulk(oids: string[], nonRepeaters: number, maxRepetitions: number, cb: Cb): void;
  close(): void;
  on(ev: "error", fn: (e: Error) => void): void;
}
interface NetSnmp {
  createSession(host: string, community: string, o: object): Session;
  createV3Session(host: string, user: object, o: object): Session;
  isVarbindError(v: Varbind): boolean;
  varbindError(v: Varbind): string;
  Version2c: number;
  ObjectType: Record<string, number>;
  SecurityLevel: Record<string, number>;
  AuthProtocols: Record<string, number>;
  PrivProtocols: Record<string, number>;
}
const snmp = netSnmp as NetSnmp;

/** SNMP error-status (RFC 3416 §3): a refusal of the value, after access was granted */
const VALUE_REFUSED = new Set([3, 7, 8, 9, 10, 12]); // badValue(v1), wrongType, wrongLength, wrongEncoding, wrongValue, inconsistentValue
/** a refusal of access (v2c agents may also drop an unknown community: a timeout) */
const ACCESS_REFUSED = new Set([2, 4, 6, 16, 17]); // noSuchName(v1), readOnly(v1), noAccess, authorizationError, notWritable
const SNMP_ERROR: Record<number, string> = {
  2: "noSuchName", 3: "badValue", 4: "readOnly", 6: "noAccess", 7: "wrongType", 8: "wrongLength", 9: "wrongEncoding",
  10: "wrongValue", 12: "inconsistentValue", 16: "authorizationError", 17: "notWritable",
};

/** varbinds asked per GetBulk: snmpd answers at most 100 (maxGetbulkResponses) */
const BULK_VARBINDS = 100;

export interface SnmpV3 {
  user: string;
  authProtocol?: "sha" | "sha256" | "sha512" | "md5"; // default sha
  authKey: string;
  privProtocol?: "aes" | "aes256b" | "aes256r" | "des"; // default aes (AES-128-CFB, RFC 3826)
  privKey: string;
}

export interface SwitchConfig {
  /** the switch's name in proofs and alarms, e.g. "switchA" */
  name: string;
  host: string;
  /** UDP port; default 161 */
  port?: number;
  version: "2c" | "3";
  /** v2c: the community for reads, and for writes unless writeCommunity is set */
  community?: string;
  writeCommunity?: string;
  /** v3: one USM user at authPriv for reads and writes */
  v3?: SnmpV3;
  /** per request before a retry; default 1000 ms */
  timeoutMs?: number;
  /** default 1 */
  retries?: number;
}

export interface SnmpOptions {
  log: Logger;
  /** monotonic ms; default performance.now */
  now?: () => number;
}

export class SnmpSwitch {
  readonly target: string;
  private readonly sessions = new Map<"r" | "w", Session>();
  private readonly now: () => number;

  constructor(
    readonly cfg: SwitchConfig,
    private readonly opts: SnmpOptions,
  ) {
    this.target = `${cfg.name} ${cfg.host}:${cfg.port ?? 161}`;
    this.now = opts.now ?? (() => performance.now());
  }

  /**
   * Walks the ifTable and ifXTable columns a port needs, side by side like snmptable: one
   * GetBulk per ~100 varbinds. With snmpd's ifTable cache off, every request reloads the
   * interfaces: 53 ports took 350-880 ms walking both tables whole, 13 ms per GetBulk here.
   */
  async ports(what: "all" | "status" = "all"): Promise<Result<PortReading>> {
    const t0 = this.now();
    const r = await this.columns(what === "all" ? PORT_COLUMNS : STATUS_COLUMNS);
    if (!r.ok) return err(`snmp ${this.target}: walk ifTable/ifXTable: ${r.error}`);
    // A switch without ifXTable still has ports: 32-bit counters and ifSpeed
    const ports = portsFromVarbinds(r.value);
    const at = this.now();
    this.opts.log.debug("snmp walk", { switch: this.cfg.name, ms: Math.round(at - t0), ports: ports.length, what });
    return ok({ switch: this.cfg.name, at, ports, ...(what === "status" ? { statusOnly: true } : {}) });
  }

  /** The ifIndex of the port whose ifDescr (else ifName) is `port`. */
  async ifIndexOf(port: string): Promise<Result<number>> {
    const r = await this.columns([IF_DESCR, IF_NAME]);
    if (!r.ok) return err(`snmp ${this.target}: walk ifDescr/ifName: ${r.error}`);
    for (const col of [IF_DESCR, IF_NAME]) {
      const hit = r.value.find((vb) => vb.oid.startsWith(`${col}.`) && str(vb.value) === port);
      if (hit) return ok(Number(hit.oid.slice(col.length + 1)));
    }
    const names = r.value.filter((vb) => vb.oid.startsWith(`${IF_DESCR}.`)).map((vb) => str(vb.value)).join(", ");
    return err(`snmp ${this.target}: no port "${port}" (ifDescr or ifName)${names ? `; ports: ${names}` : ""}`);
  }

  /** ifAdminStatus.<ifIndex> (GET). */
  async adminStatus(ifIndex: number): Promise<Result<AdminStatus>> {
    const oid = `${IF_ADMIN_STATUS}.${ifIndex}`;
    const r = await this.request("r", (s, cb) => s.get([oid], cb));
    if (!r.ok) return err(`snmp ${this.target}: get ifAdminStatus.${ifIndex}: ${r.error}`);
    const v = ADMIN[int(r.value[0]?.value) ?? 0];
    return v ? ok(v) : err(`snmp ${this.target}: ifAdminStatus.${ifIndex}: unexpected value ${String(r.value[0]?.value)}`);
  }

  /** SET ifAdminStatus.<ifIndex> = up(1)|down(2), then GET it back: ok only when it reads back as set. */
  async setAdminStatus(ifIndex: number, status: "up" | "down"): Promise<Result<AdminStatus>> {
    const oid = `${IF_ADMIN_STATUS}.${ifIndex}`;
    const r = await this.request("w", (s, cb) => s.set([{ oid, type: snmp.ObjectType.Integer!, value: status === "up" ? 1 : 2 }], cb));
    if (!r.ok) return err(`snmp ${this.target}: set ifAdminStatus.${ifIndex}=${status}: ${r.error}`);
    const back = await this.adminStatus(ifIndex);
    if (!back.ok) return back;
    return back.value === status ? back : err(`snmp ${this.target}: set ifAdminStatus.${ifIndex}=${status} accepted, read back ${back.value}`);
  }

  /**
   * Proves that the write community (or v3 user) may write ifAdminStatus.<ifIndex>, without
   * changing it (the N+1 readiness check of fence level 2: agent/runtime/readiness-checks.ts).
   * It SETs a value of the wrong type, an empty OCTET STRING for an INTEGER: an agent checks
   * access before the value (RFC 3416 §4.2.5 steps 1-2: noAccess / notWritable, then
   * wrongType), so `wrongType` means the write would have been allowed, and nothing was set
   * (an agent that ignored the type would read 0, not a valid ifAdminStatus either). Measured
   * on net-snmp's snmpd: the read community gets noAccess, the write one wrongType; a NULL
   * value is refused as wrongType before the access check, so it proves nothing. A SET of the
   * current value would prove it too, but would put a port back up if a fence shut it between
   * our read and our write; a GET with the write community proves nothing (any community
   * that can read answers it).
   */
  async checkWriteAccess(ifIndex: number): Promise<Result<string>> {
    const oid = `${IF_ADMIN_STATUS}.${ifIndex}`;
    let s: Session;
    try {
      s = this.session("w");
    } catch (e) {
      return err(`snmp ${this.target}: session: ${(e as Error).message}`);
    }
    const r = await new Promise<{ e: (Error & { status?: unknown }) | null }>((resolve) => {
      try {
        s.set([{ oid, type: snmp.ObjectType.OctetString!, value: Buffer.alloc(0) }], (e) => resolve({ e }));
      } catch (e) {
        resolve({ e: e as Error });
      }
    });
    const where = `snmp ${this.target}: write access to ifAdminStatus.${ifIndex}`;
    if (!r.e) return err(`${where}: the agent took an OCTET STRING for an INTEGER (it does not check types): not proven`);
    const status = r.e.name === "RequestFailedError" && typeof r.e.status === "number" ? r.e.status : null;
    if (status !== null && VALUE_REFUSED.has(status)) return ok(`${where}: allowed (a wrong-typed SET refused as ${SNMP_ERROR[status]}, nothing set)`);
    this.drop("w");
    if (status !== null && ACCESS_REFUSED.has(status)) return err(`${where}: refused (${SNMP_ERROR[status]}): the write community may not write it`);
    return err(`${where}: ${this.explain(r.e)}`);
  }

  close(): void {
    for (const s of this.sessions.values()) try { s.close(); } catch { /* closed */ }
    this.sessions.clear();
  }

  /** Walks `cols` (table columns) side by side with GetBulk until each leaves its column. */
  private async columns(cols: string[]): Promise<Result<Varbind[]>> {
    const out: Varbind[] = [];
    let pending = cols.map((base) => ({ base, next: base }));
    for (let round = 0; pending.length; round++) {
      if (round >= 2000) return err("walk did not end after 2000 requests");
      const reps = Math.max(1, Math.floor(BULK_VARBINDS / pending.length));
      const r = await this.request("r", (s, cb) => s.getBulk(pending.map((p) => p.next), 0, reps, cb));
      if (!r.ok) return r;
      const rows = r.value as unknown as Varbind[][];
      let moved = 0;
      pending = pending.filter((p, i) => {
        for (const vb of Array.isArray(rows[i]) ? rows[i] : []) {
          // past the column, or endOfMibView (130): this column is done
          if (vb.type === 130 || !vb.oid.startsWith(`${p.base}.`)) return false;
          if (vb.oid === p.next) return false; // an agent that does not advance
          out.push(vb);
          p.next = vb.oid;
          moved++;
        }
        return true; // a truncated answer may carry nothing for this column: ask again
      });
      if (!moved && pending.length) return err("the agent's answers stopped advancing");
    }
    return ok(out);
  }

  private async request(kind: "r" | "w", send: (s: Session, cb: Cb) => void): Promise<Result<Varbind[]>> {
    let s: Session;
    try {
      s = this.session(kind);
    } catch (e) {
      return err(`session: ${(e as Error).message}`);
    }
    const r = await new Promise<Result<Varbind[]>>((resolve) => {
      try {
        send(s, (e, vbs) => {
          if (e) return resolve(err(this.explain(e)));
          // GetBulk answers are grouped per requested OID; endOfMibView only ends a column
          const bad = ((vbs ?? []) as (Varbind | Varbind[])[]).flat().find((v) => v.type !== 130 && snmp.isVarbindError(v));
          resolve(bad ? err(snmp.varbindError(bad)) : ok(vbs ?? []));
        });
      } catch (e) {
        resolve(err((e as Error).message));
      }
    });
    if (!r.ok) this.drop(kind);
    return r;
  }

  private explain(e: Error): string {
    if (e.name === "RequestTimedOutError") {
      const tries = (this.cfg.retries ?? 1) + 1;
      const who = this.cfg.version === "2c" ? "wrong community" : "wrong v3 user";
      return `no answer after ${tries} x ${this.cfg.timeoutMs ?? 1000} ms (switch unreachable, or ${who}?)`;
    }
    return e.message;
  }

  private session(kind: "r" | "w"): Session {
    const c = this.cfg;
    const key = kind === "w" && c.version === "2c" && c.writeCommunity ? "w" : "r";
    const have = this.sessions.get(key);
    if (have) return have;
    const o = { port: c.port ?? 161, timeout: c.timeoutMs ?? 1000, retries: c.retries ?? 1, transport: "udp4" };
    let s: Session;
    if (c.version === "3") {
      if (!c.v3) throw new Error(`${c.name}: version 3 needs v3 {user, authKey, privKey}`);
      s = snmp.createV3Session(c.host, {
        name: c.v3.user, level: snmp.SecurityLevel.authPriv,
        authProtocol: snmp.AuthProtocols[c.v3.authProtocol ?? "sha"], authKey: c.v3.authKey,
        privProtocol: snmp.PrivProtocols[c.v3.privProtocol ?? "aes"], privKey: c.v3.privKey,
      }, o);
    } else {
      const community = key === "w" ? c.writeCommunity! : c.community;
      if (!community) throw new Error(`${c.name}: version 2c needs a community`);
      s = snmp.createSession(c.host, community, { ...o, version: snmp.Version2c });
    }
    s.on("error", (e) => {
      this.opts.log.warn("snmp session error", { switch: c.name, error: e.message });
      this.drop(key);
    });
    this.sessions.set(key, s);
    return s;
  }

  private drop(kind: "r" | "w"): void {
    for (const k of kind === "w" ? (["w", "r"] as const) : (["r"] as const)) {
      const s = this.sessions.get(k);
      if (!s) continue;
      this.sessions.delete(k);
      try { s.close(); } catch { /* closed */ }
    }
  }
}
