// Pure parsers for ipmitool 1.8.x text output (DESIGN §6). Nothing here does I/O or throws:
// a BMC's answer is input from outside, so anything unexpected becomes an error value
// (STYLE "Config, logs, errors"). Formats follow ipmitool's printf()s:
//   `chassis power status`  "Chassis Power is on|off"                      (ipmi_chassis.c)
//   `chassis power off|on`  "Chassis Power Control: Down/Off|Up/On"         (ipmi_chassis.c)
//   `sensor` / `sensor list` name | value | unit | status | lnr | lcr | lnc | unc | ucr | unr
//                                                                         (ipmi_sensor.c)
//   `sdr elist`             name | 01h | ok | 7.1 | 40 degrees C           (ipmi_sdr.c)
//   `sdr list [full]`       name | 40 degrees C | ok
//   `sel elist` / `sel list` "%4x | date | time | sensor | event | direction[ | detail]"
//                           (ipmi_sel.c; the record id is hex, the date "Pre-Init" before
//                           the BMC's clock is set, the time then seconds since init)
//   `fru`                   "FRU Device Description : ... (ID n)" then " Key : Value" lines

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export const ok = <T>(value: T): Result<T> => ({ ok: true, value });
export const err = <T = never>(error: string): Result<T> => ({ ok: false, error });

export type PowerState = "on" | "off";

/** How bad a reading is, from ipmitool's status column. Discrete sensors: judge `offsets`/`states`. */
export type Severity = "ok" | "warning" | "critical" | "unknown";

export interface Thresholds {
  lnr: number | null;
  lcr: number | null;
  lnc: number | null;
  unc: number | null;
  ucr: number | null;
  unr: number | null;
}

export interface Sensor {
  name: string;
  /** the numeric reading; null for discrete sensors and for "na" / "no reading" */
  value: number | null;
  /** "degrees C", "RPM", "Volts", ...; "discrete" for state sensors; "" when unknown */
  unit: string;
  /** ipmitool's status: ok nc cr nr (sensor), ok unc ucr unr lnc lcr lnr ns (sdr elist),
   * na; or the discrete state word, e.g. "0x0300" (sensor) */
  status: string;
  severity: Severity;
  discrete: boolean;
  /** `sensor` only: the six thresholds, null where the sensor has none ("na") */
  thresholds?: Thresholds;
  /** discrete sensors from `sensor`: asserted state offsets (IPMI 2.0 table 42-3), e.g. [0, 1] */
  offsets?: number[];
  /** discrete sensors from `sdr elist`: the state text, e.g. "Presence detected, Failure detected" */
  states?: string;
  /** `sdr elist` only: the sensor number (01h) and entity id.instance (7.1) */
  number?: number;
  entity?: string;
}

export interface SelEntry {
  /** SEL record id (printed in hex by ipmitool) */
  id: number;
  /** "11/22/26", or "Pre-Init" before the BMC's SEL clock was set */
  date: string;
  /** "02:17:27 UTC", or seconds since the BMC's init ("0000001256") under Pre-Init */
  time: string;
  /** sensor type and name, e.g. "Temperature Temp", "Fan #0x02" (`sel list`) */
  sensor: string;
  /** e.g. "Upper Critical going high", "Failure detected" */
  event: string;
  direction: "asserted" | "deasserted" | null;
  /** `sel elist` extra column, e.g. "Reading 85 > Threshold 80 degrees C" */
  detail?: string;
}

export interface SelRead {
  /** entries newer than the last seen id, oldest first */
  entries: SelEntry[];
  /** the id to pass next time (unchanged when the SEL is empty) */
  lastId: number | null;
  /** true when the last seen id is gone and every id is lower: the SEL was cleared or wrapped */
  reset: boolean;
}

export interface FruDevice {
  /** the FRU device id from "(ID n)", null when ipmitool does not print one */
  id: number | null;
  description: string;
  present: boolean;
  /** " Board Mfg : Bollard Lab" -> {"Board Mfg": "Bollard Lab"}; repeated keys joined with "; " */
  fields: Record<string, string>;
  /** why a device could not be read, e.g. "Device not present (Invalid data field in request)" */
  error?: string;
}

const clip = (s: string, n = 120): string => {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > n ? `${one.slice(0, n)}...` : one || "(empty)";
};
const lines = (out: string): string[] => out.split(/\r?\n/).filter((l) => l.trim() !== "");

/** `chassis power status` (IPMI Get Chassis Status, NetFn 00h cmd 01h). */
export function parsePowerStatus(out: string): Result<PowerState> {
  const m = /Chassis Power is (on|off)\b/i.exec(out);
  return m ? ok(m[1]!.toLowerCase() as PowerState) : err(`power status: expected "Chassis Power is on|off", got "${clip(out)}"`);
}

/** `chassis power off|on` (IPMI Chassis Control, NetFn 00h cmd 02h): the BMC accepted the command. */
export function parsePowerControl(out: string, want: PowerState): Result<PowerState> {
  const expect = want === "off" ? "Down/Off" : "Up/On";
  return out.includes(`Chassis Power Control: ${expect}`)
    ? ok(want)
    : err(`power ${want}: expected "Chassis Power Control: ${expect}", got "${clip(out)}"`);
}

const num = (s: string): number | null => {
  const t = s.trim();
  if (!/^[-+]?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(t)) return null;
  return Number(t);
};

export function severityOf(status: string): Severity {
  switch (status.toLowerCase()) {
    case "ok":
      return "ok";
    case "nc": case "unc": case "lnc":
      return "warning";
    case "cr": case "ucr": case "lcr": case "nr": case "unr": case "lnr":
      return "critical";
    default:
      return "unknown";
  }
}

/** Discrete state word "0x0300" -> asserted offsets [0, 1]: first byte offsets 0-7, second 8-14. */
export function stateOffsets(word: string): number[] | null {
  const m = /^0x([0-9a-f]{2})([0-9a-f]{2})$/i.exec(word.trim());
  if (!m) return null;
  const bits = parseInt(m[1]!, 16) | (parseInt(m[2]!, 16) << 8);
  const out: number[] = [];
  for (let i = 0; i < 15; i++) if (bits & (1 << i)) out.push(i);
  return out;
}

/** `ipmitool sensor` (Get Sensor Reading 2Dh + Get Sensor Thresholds 27h for each full SDR). */
export function parseSensorList(out: string): Result<Sensor[]> {
  const sensors: Sensor[] = [];
  const bad: string[] = [];
  for (const line of lines(out)) {
    const f = line.split("|").map((s) => s.trim());
    if (f.length !== 10 || !f[0]) {
      bad.push(line);
      continue;
    }
    const [name, value, unit, status] = f as [string, string, string, string];
    const discrete = unit === "discrete";
    const t = f.slice(4).map(num) as (number | null)[];
    const s: Sensor = {
      name, value: discrete ? null : num(value), unit, status, severity: discrete ? "unknown" : severityOf(status), discrete,
    };
    if (discrete) {
      const offs = stateOffsets(status);
      if (offs) s.offsets = offs;
    } else {
      s.thresholds = { lnr: t[0]!, lcr: t[1]!, lnc: t[2]!, unc: t[3]!, ucr: t[4]!, unr: t[5]! };
    }
    sensors.push(s);
  }
  if (!sensors.length && bad.length) return err(`sensor: no "name | value | unit | status | 6 thresholds" lines in "${clip(out)}"`);
  return ok(sensors);
}

const READING = /^([-+]?\d+(?:\.\d+)?)\s+(.+)$/;

/** `ipmitool sdr elist [full|compact|all]` (Get SDR 23h + Get Sensor Reading 2Dh). */
export function parseSdrElist(out: string): Result<Sensor[]> {
  const sensors: Sensor[] = [];
  const bad: string[] = [];
  for (const line of lines(out)) {
    const f = line.split("|").map((s) => s.trim());
    const n = /^([0-9a-f]{2})h$/i.exec(f[1] ?? "");
    if (f.length !== 5 || !f[0] || !n) {
      bad.push(line);
      continue;
    }
    const [name, , status, entity, reading] = f as [string, string, string, string, string];
    const m = READING.exec(reading);
    const s: Sensor = {
      name, value: m ? Number(m[1]) : null, unit: m ? m[2]! : "", status, severity: severityOf(status),
      discrete: !m, number: parseInt(n[1]!, 16), entity,
    };
    if (!m) {
      s.unit = "discrete";
      s.states = reading;
      if (status === "ok") s.severity = "unknown"; // ipmitool says "ok" whatever the states
    }
    sensors.push(s);
  }
  if (!sensors.length && bad.length) return err(`sdr elist: no "name | NNh | status | entity | reading" lines in "${clip(out)}"`);
  return ok(sensors);
}

/** `ipmitool sdr list [full]`: name | reading | status (no sensor numbers, no thresholds). */
export function parseSdrList(out: string): Result<Sensor[]> {
  const sensors: Sensor[] = [];
  const bad: string[] = [];
  for (const line of lines(out)) {
    const f = line.split("|").map((s) => s.trim());
    if (f.length !== 3 || !f[0]) {
      bad.push(line);
      continue;
    }
    const [name, reading, status] = f as [string, string, string];
    const m = READING.exec(reading);
    const discrete = !m && /^0x[0-9a-f]+$/i.test(reading);
    sensors.push({
      name, value: m ? Number(m[1]) : null, unit: m ? m[2]! : discrete ? "discrete" : "",
      status, severity: discrete ? "unknown" : severityOf(status), discrete, ...(discrete ? { states: reading } : {}),
    });
  }
  if (!sensors.length && bad.length) return err(`sdr list: no "name | reading | status" lines in "${clip(out)}"`);
  return ok(sensors);
}

/** `ipmitool sel elist` or `sel list` (Get SEL Entry, NetFn 0Ah cmd 43h). */
export function parseSel(out: string): Result<SelEntry[]> {
  const entries: SelEntry[] = [];
  const bad: string[] = [];
  for (const line of lines(out)) {
    if (/^SEL has no entries/i.test(line.trim())) continue;
    const f = line.split("|").map((s) => s.trim());
    if (f.length < 5 || !/^[0-9a-f]{1,4}$/i.test(f[0]!)) {
      bad.push(line);
      continue;
    }
    const dir = (f[5] ?? "").toLowerCase();
    const e: SelEntry = {
      id: parseInt(f[0]!, 16), date: f[1]!, time: f[2]!, sensor: f[3]!, event: f[4]!,
      direction: dir === "asserted" ? "asserted" : dir === "deasserted" ? "deasserted" : null,
    };
    const rest = f.slice(e.direction ? 6 : 5).filter((s) => s !== "");
    if (rest.length) e.detail = rest.join(" | ");
    entries.push(e);
  }
  if (!entries.length && bad.length) return err(`sel: no "id | date | time | sensor | event" lines in "${clip(out)}"`);
  return ok(entries);
}

/**
 * The entries after `lastId` (null: all). Entries are in log order, so everything after the
 * last seen record is new; when that record is gone, ids above it are new, and when every id
 * is below it the SEL was cleared or wrapped: all entries are new and `reset` says so.
 */
export function selNewerThan(entries: SelEntry[], lastId: number | null): SelRead {
  const last = entries.length ? entries[entries.length - 1]!.id : lastId;
  if (lastId === null) return { entries, lastId: last, reset: false };
  const at = entries.findIndex((e) => e.id === lastId);
  if (at >= 0) return { entries: entries.slice(at + 1), lastId: last, reset: false };
  const newer = entries.filter((e) => e.id > lastId);
  if (newer.length || !entries.length) return { entries: newer, lastId: last, reset: false };
  return { entries, lastId: last, reset: true };
}

/** `ipmitool fru [print]` (Get FRU Inventory Area Info 10h + Read FRU Data 11h, FRU spec 1.0). */
export function parseFru(out: string): Result<FruDevice[]> {
  const devices: FruDevice[] = [];
  let cur: FruDevice | null = null;
  for (const line of lines(out)) {
    const head = /^FRU Device Description\s*:\s*(.*)$/.exec(line);
    if (head) {
      const id = /\(ID (\d+)\)/.exec(head[1]!);
      cur = { id: id ? Number(id[1]) : null, description: head[1]!.trim(), present: true, fields: {} };
      devices.push(cur);
      continue;
    }
    const kv = /^\s+([^:]+?)\s*:\s?(.*)$/.exec(line);
    if (cur && kv) {
      const [k, v] = [kv[1]!, kv[2]!.trim()];
      // a field may be named like one of Object's own ("constructor", "__proto__"): an own
      // property, defined rather than assigned (assigning "__proto__" would set the prototype)
      const value = Object.hasOwn(cur.fields, k) ? `${cur.fields[k]}; ${v}` : v;
      Object.defineProperty(cur.fields, k, { value, enumerable: true, writable: true, configurable: true });
      continue;
    }
    if (cur && /^\s+\S/.test(line)) {
      cur.present = false; // e.g. " Device not present (Invalid data field in request)"
      cur.error = line.trim();
    }
  }
  if (!devices.length) return err(`fru: no "FRU Device Description : ..." line in "${clip(out)}"`);
  return ok(devices);
}
