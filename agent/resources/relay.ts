// The tail of a replica's relay log, as SHOW RELAYLOG EVENTS lists it (MariaDB
// https://mariadb.com/kb/en/show-relaylog-events/, MySQL 8 SHOW RELAYLOG EVENTS): is the last
// transaction whole, or did the source die in the middle of sending it? (issue 20 item 2)
//
// A transaction is an event group: a GTID event, its events, and the end of the group, an Xid
// event (transactional engines) or a Query event "COMMIT" (others). A standalone statement
// (DDL) is a GTID event and the one Query event that follows it (MariaDB marks it: "GTID d-s-n"
// without BEGIN; MySQL 8 writes its DDL as one Query event after the Gtid one). Under semi-sync
// AFTER_SYNC a replica acknowledges a transaction once its last event is in the relay log, so a
// group that did not arrive whole was never acknowledged to a client: a promotion may drop it.
// MariaDB does not count it in Gtid_IO_Pos (measured, 10.11); MySQL 8's Retrieved_Gtid_Set does
// include it, so a promotion that waits for it waits forever.
//
// Pure: rows in, the incomplete group (its GTID) out, or an error value for rows it cannot read.

export interface RelayEvent {
  Event_type: unknown;
  Info: unknown;
  Pos?: unknown;
  End_log_pos?: unknown;
}

export type RelayTail = { ok: true; incomplete: string | null; events: number } | { ok: false; error: string };

/** MariaDB: "BEGIN GTID 0-1-5" (a transaction) or "GTID 0-1-6" (standalone); MySQL: SET @@SESSION.GTID_NEXT= 'uuid:5'. */
function gtidOf(info: string): { gtid: string; standalone: boolean } | null {
  const maria = /^(BEGIN )?GTID (\d+-\d+-\d+)/.exec(info);
  if (maria) return { gtid: maria[2]!, standalone: !maria[1] };
  const mysql = /GTID_NEXT\s*=\s*'([0-9a-fA-F-]{36}(?::[a-z_][a-z0-9_]*)?:\d+)'/.exec(info);
  if (mysql) return { gtid: mysql[1]!, standalone: false };
  return null;
}

/**
 * Reads events from the SQL thread's position to the end of the relay log (several files'
 * rows concatenated, in order) and says whether the last group is open. MySQL 8's Gtid event
 * does not say whether a DDL follows: a group there ends at an Xid, a COMMIT, or the first
 * Query event that is not BEGIN (a DDL).
 */
export function relayTail(rows: readonly RelayEvent[]): RelayTail {
  let open: { gtid: string; standalone: boolean; sawBegin: boolean } | null = null;
  for (const [i, r] of rows.entries()) {
    if (typeof r?.Event_type !== "string") return { ok: false, error: `relay log event ${i}: Event_type: expected text, got ${JSON.stringify(r?.Event_type)}` };
    const type = r.Event_type;
    const info = typeof r.Info === "string" ? r.Info.trim() : r.Info === null || r.Info === undefined ? "" : String(r.Info);
    if (type === "Gtid") {
      const g = gtidOf(info);
      if (!g) return { ok: false, error: `relay log event ${i}: a Gtid event whose Info does not name a GTID: ${JSON.stringify(info.slice(0, 80))}` };
      open = { ...g, sawBegin: info.startsWith("BEGIN") };
      continue;
    }
    if (!open) continue;
    if (type === "Xid" || type === "XA_prepare") { open = null; continue; }
    if (type === "Query") {
      const q = info.replace(/^\/\*.*?\*\/\s*/, "").toUpperCase();
      if (q === "BEGIN") { open.sawBegin = true; continue; }
      if (q.startsWith("COMMIT") || q.startsWith("ROLLBACK") || open.standalone || !open.sawBegin) open = null;
    }
  }
  return { ok: true, incomplete: open?.gtid ?? null, events: rows.length };
}
