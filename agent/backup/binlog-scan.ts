// What an archived binlog file holds: its transactions' GTIDs and times, read with the server's
// own decoder (`mariadb-binlog FILE`, run with TZ=UTC so the times it prints are UTC). Each
// transaction starts with a GTID event, printed as
//   #261206 10:28:56 server id 1  end_log_pos 680 CRC32 0x50350c3b 	GTID 0-1-3 trans
// (https://mariadb.com/kb/en/gtid_event/; "ddl" instead of "trans" for DDL, and a "cid=N"
// commit id under group commit). The parser is pure: the text is input from outside, and a line
// it does not understand is counted, never a crash.
import { execFile } from "node:child_process";

export interface BinlogEvent {
  domain: number;
  server: number;
  seq: number;
  /** the event's time, UTC ms (whole seconds: the binlog keeps seconds) */
  ts: number;
}

const LINE = /^#(\d\d)(\d\d)(\d\d) +(\d\d?):(\d\d):(\d\d) server id \d+ .*\bGTID (\d+)-(\d+)-(\d+)\b/;

export function parseBinlogText(text: string): { events: BinlogEvent[]; bad: number } {
  const events: BinlogEvent[] = [];
  let bad = 0;
  // a transaction counts once it is whole: a "trans" group ends with its Xid event (or a COMMIT
  // query for a non-transactional engine), a "ddl"/"standalone" one with its Query event. The
  // last group of a file still being written, or cut by a crash, is not counted (its stream's
  // successor starts after the last whole one, so it is fetched again).
  let open: { e: BinlogEvent; ddl: boolean } | null = null;
  for (const line of text.split("\n")) {
    if (open && (/^#\d{6} .*\tXid = \d+/.test(line) || line.startsWith("COMMIT/*!*/;") || (open.ddl && /^#\d{6} .*\tQuery\t/.test(line)))) {
      events.push(open.e);
      open = null;
      continue;
    }
    if (!line.startsWith("#") || !/\tGTID \d|\bGTID \d+-\d+-\d+ (trans|ddl|standalone)/.test(line)) continue;
    open = null;
    const m = LINE.exec(line);
    if (!m) { bad++; continue; }
    const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
    const ts = Date.UTC(2000 + y, mo - 1, d, h, mi, s);
    const seq = Number(m[9]);
    if (!Number.isFinite(ts) || !Number.isSafeInteger(seq)) { bad++; continue; }
    open = { e: { domain: Number(m[7]), server: Number(m[8]), seq, ts }, ddl: !/ trans\b|cid=/.test(line.slice(line.indexOf("GTID"))) || / ddl\b/.test(line) };
  }
  return { events, bad };
}

/** Decodes one archived file. A file still being written ends in the middle of an event: the
 *  tool then fails after printing what it could read, and what it printed is kept. */
export function scanBinlogFile(path: string, tool = "mariadb-binlog"): Promise<{ events: BinlogEvent[]; bad: number; error: string | null }> {
  return new Promise((resolve) => {
    execFile(tool, [path], { env: { ...process.env, TZ: "UTC" }, maxBuffer: 1 << 30, timeout: 120_000 }, (err, stdout, stderr) => {
      const r = parseBinlogText(stdout);
      resolve({ ...r, error: err ? `${tool} ${path}: ${(stderr || err.message).trim().split("\n").slice(-1)[0]}` : null });
    });
  });
}
