// The SQL each server flavour needs (issue 4 item 1). Pure: every method returns statements
// (text with `?` placeholders plus parameters, filled in client-side by mysql2's escaper), or
// parses a row; nothing here does I/O, so the statements are unit-tested as strings.
// Logs carry `sql` only, never `params` (they hold the replication password).
//
// MariaDB 10.11: https://mariadb.com/kb/en/change-master-to/, .../semisynchronous-replication/
//   (built in since 10.3.3, no plugin), .../gtid/. No super_read_only: read_only only (a user
//   with READ_ONLY ADMIN can still write, so demote also kills client connections).
// MySQL 8.0.26+: https://dev.mysql.com/doc/refman/8.0/en/change-replication-source-to.html,
//   .../replication-semisync-installation.html (plugins semisync_source / semisync_replica).
import { format } from "mysql2/promise";
import type { GtidKind } from "./gtid.ts";

export type Param = string | number;
export interface Sql {
  sql: string;
  params: readonly Param[];
}
export interface SourceSpec {
  host: string;
  port: number;
  user: string;
  password: string;
}
/** What the driver reads out of SHOW SLAVE STATUS / SHOW REPLICA STATUS. */
export interface ReplicaRow {
  source: string;
  ioRunning: boolean;
  sqlRunning: boolean;
  lagSeconds: number | null;
  lastError: string | null;
  /** received, maybe not yet applied: MariaDB Gtid_IO_Pos, MySQL Retrieved_Gtid_Set */
  gtidReceived: string;
  /** where the receiver thread has read to in the source's binlog (file:pos): it moves when events arrive */
  readPos: string;
  /** the applier's position in its relay log, for SHOW RELAYLOG EVENTS */
  relayFile: string;
  relayPos: number;
  /** the applier has applied everything in the relay log and waits for more */
  sqlIdle: boolean;
  /** the receiver thread is on: running, or connecting to its source ("No": stopped) */
  receiverOn: boolean;
}
/** Global variables status() reads, by role in MysqlStatus. */
export interface StatusVariables {
  readOnly: string[];
  gtidExecuted: string;
  semiSyncSource: string;
  semiSyncReplica: string;
}

export interface Flavour {
  readonly name: "mariadb-10.11" | "mysql-8";
  readonly gtidKind: GtidKind;
  showReplicaStatus(): Sql;
  parseReplicaStatus(row: Record<string, unknown>): ReplicaRow;
  changeSource(s: SourceSpec): Sql;
  startReplica(): Sql;
  stopReplica(): Sql;
  stopReplicaIo(): Sql;
  /** the applier alone (after a STOP of both threads, the relay log is still to be applied) */
  startReplicaSql(): Sql;
  /** one row, column `n`: replication heartbeats received from the source so far */
  receivedHeartbeats(): Sql;
  /** SHOW RELAYLOG EVENTS of one relay log file from a position (relay.ts reads them) */
  relayLogEvents(file: string, pos: number, limit: number): Sql;
  resetReplicaAll(): Sql;
  readOnly(on: boolean): Sql[];
  /** Statements that make the semi-sync variables exist (MySQL: plugins). */
  installSemiSync(): Sql[];
  /** Primary: source side ON with wait point AFTER_SYNC, replica side OFF. */
  semiSyncPrimary(timeoutMs: number): Sql[];
  /** Replica: source side OFF (a rejoined node stalls otherwise, LAB-NOTES), replica side ON. */
  semiSyncReplica(): Sql[];
  /** Source side OFF only (demote). */
  semiSyncSourceOff(): Sql[];
  /** Before a STOP on a replica whose source may be gone. MariaDB: a replica whose IO thread
   *  negotiated semi-sync, on STOP SLAVE, first connects to the source to KILL its dump thread
   *  (Repl_semi_sync_slave::kill_connection), with rpl_semi_sync_slave_kill_conn_timeout (5 s)
   *  as the connect timeout, cut at 2 s by terminate_slave_thread's re-signal: measured in the
   *  lab, STOP SLAVE took 2.01 s against a black-holed source, 1.02 s with the timeout at 1 s,
   *  0.01 s without semi-sync. Turning rpl_semi_sync_slave_enabled off first does not help
   *  (the connection's state counts). Every power-off failover's promote waited behind it. */
  beforeStopReplica(): Sql[];
  statusVariables(): { sql: Sql; names: StatusVariables };
  /** One row, column `gtid`: the executed position/set. */
  executedGtid(): Sql;
  /** One row, column `gtid`: what the rejoin check compares (MariaDB gtid_binlog_state). */
  binlogState(): Sql;
  /** One row, column `r`; see waitResult. */
  waitForGtid(pos: string, timeoutMs: number): Sql;
  waitResult(r: unknown): "reached" | "timeout" | "error";
  createReplUser(user: string, password: string, hostPattern: string): Sql[];
  /** Rows with column `id`: client connections to kill on demote. */
  clientConnections(keepUsers: readonly string[]): Sql;
  kill(id: number): Sql;
  /** Session lock_wait_timeout (s): bounds SET GLOBAL read_only behind other sessions' locks. */
  lockWaitTimeout(seconds: number): Sql;
  /** Before pointing an old primary at a new one (MariaDB: take its own binlog as position). */
  prepareRejoin(): Sql[];
}

const q = (sql: string, ...params: Param[]): Sql => ({ sql, params });

/** The statement with its parameters escaped in: for tests only, never for logs. */
export function render(s: Sql): string {
  return format(s.sql, s.params as Param[]);
}

const str = (v: unknown): string => (v === null || v === undefined ? "" : String(v));
const yes = (v: unknown): boolean => str(v) === "Yes";
const lag = (v: unknown): number | null => (v === null || v === undefined || v === "" ? null : Number(v));
const firstError = (...vs: unknown[]): string | null => vs.map(str).find((s) => s !== "") ?? null;

// Processlist rows that are not clients: our own connection, server threads, replication.
const SERVER_USERS = ["system user", "event_scheduler"];

function processlist(commands: string[], keepUsers: readonly string[]): Sql {
  const users = [...SERVER_USERS, ...keepUsers];
  return q(
    "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()" +
      ` AND USER NOT IN (${users.map(() => "?").join(", ")})` +
      ` AND COMMAND NOT IN (${commands.map(() => "?").join(", ")})`,
    ...users,
    ...commands,
  );
}

/** MASTER_HEARTBEAT_PERIOD / SOURCE_HEARTBEAT_PERIOD, seconds */
export const HEARTBEAT_PERIOD_S = 0.5;

export const mariadb: Flavour = {
  name: "mariadb-10.11",
  gtidKind: "mariadb",
  showReplicaStatus: () => q("SHOW SLAVE STATUS"),
  parseReplicaStatus: (r) => ({
    source: `${str(r.Master_Host)}:${str(r.Master_Port)}`,
    ioRunning: yes(r.Slave_IO_Running),
    sqlRunning: yes(r.Slave_SQL_Running),
    lagSeconds: lag(r.Seconds_Behind_Master),
    lastError: firstError(r.Last_IO_Error, r.Last_SQL_Error),
    gtidReceived: str(r.Gtid_IO_Pos),
    readPos: `${str(r.Master_Log_File)}:${str(r.Read_Master_Log_Pos)}`,
    relayFile: str(r.Relay_Log_File),
    relayPos: Number(r.Relay_Log_Pos) || 0,
    sqlIdle: /read all relay log/i.test(str(r.Slave_SQL_Running_State)),
    receiverOn: str(r.Slave_IO_Running) !== "No" && str(r.Slave_IO_Running) !== "",
  }),
  // MASTER_USE_GTID=slave_pos: resume from @@gtid_slave_pos; MASTER_CONNECT_RETRY=1 s between
  // reconnects (default 60), so a replica finds a restarted source quickly. MASTER_HEARTBEAT_PERIOD
  // (default slave_net_timeout/2 = 30 s): an idle source sends a heartbeat this often, so a
  // replica can tell a live source from a gone one within a second (issue 20 item 4).
  changeSource: (s) =>
    q(
      "CHANGE MASTER TO MASTER_HOST=?, MASTER_PORT=?, MASTER_USER=?, MASTER_PASSWORD=?, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=?",
      s.host, s.port, s.user, s.password, HEARTBEAT_PERIOD_S,
    ),
  receivedHeartbeats: () => q("SELECT VARIABLE_VALUE AS n FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'SLAVE_RECEIVED_HEARTBEATS'"),
  startReplicaSql: () => q("START SLAVE SQL_THREAD"),
  relayLogEvents: (file, pos, limit) => q(`SHOW RELAYLOG EVENTS IN ? FROM ${Math.trunc(pos)} LIMIT ${Math.trunc(limit)}`, file),
  startReplica: () => q("START SLAVE"),
  stopReplica: () => q("STOP SLAVE"),
  stopReplicaIo: () => q("STOP SLAVE IO_THREAD"),
  resetReplicaAll: () => q("RESET SLAVE ALL"),
  readOnly: (on) => [q(`SET GLOBAL read_only = ${on ? "ON" : "OFF"}`)],
  installSemiSync: () => [],
  semiSyncPrimary: (timeoutMs) => [
    q("SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC"),
    q("SET GLOBAL rpl_semi_sync_master_timeout = ?", Math.max(0, Math.round(timeoutMs))),
    q("SET GLOBAL rpl_semi_sync_slave_enabled = OFF"),
    q("SET GLOBAL rpl_semi_sync_master_enabled = ON"),
  ],
  semiSyncReplica: () => [
    q("SET GLOBAL rpl_semi_sync_master_enabled = OFF"),
    q("SET GLOBAL rpl_semi_sync_slave_enabled = ON"),
  ],
  semiSyncSourceOff: () => [q("SET GLOBAL rpl_semi_sync_master_enabled = OFF")],
  beforeStopReplica: () => [q("SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1")],
  statusVariables: () => ({
    sql: q(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN (?, ?, ?, ?)",
      "read_only", "gtid_current_pos", "rpl_semi_sync_master_enabled", "rpl_semi_sync_slave_enabled",
    ),
    names: {
      readOnly: ["read_only"],
      gtidExecuted: "gtid_current_pos",
      semiSyncSource: "rpl_semi_sync_master_enabled",
      semiSyncReplica: "rpl_semi_sync_slave_enabled",
    },
  }),
  executedGtid: () => q("SELECT @@GLOBAL.gtid_current_pos AS gtid"),
  binlogState: () => q("SELECT @@GLOBAL.gtid_binlog_state AS gtid"),
  // MASTER_GTID_WAIT(gtid-list, timeout s): 0 reached, -1 timed out, NULL on error.
  waitForGtid: (pos, timeoutMs) => q("SELECT MASTER_GTID_WAIT(?, ?) AS r", pos, timeoutMs / 1000),
  waitResult: (r) => (r === null || r === undefined ? "error" : Number(r) === 0 ? "reached" : Number(r) === -1 ? "timeout" : "error"),
  createReplUser: (user, password, host) => [
    q("CREATE USER IF NOT EXISTS ?@? IDENTIFIED BY ?", user, host, password),
    q("ALTER USER ?@? IDENTIFIED BY ?", user, host, password),
    q("GRANT REPLICATION SLAVE ON *.* TO ?@?", user, host),
  ],
  // Replication threads run as "system user" (Slave_IO, Slave_SQL, Slave_worker); a replica's
  // dump thread on the primary runs as the replication user, command "Binlog Dump".
  clientConnections: (keep) => processlist(["Binlog Dump", "Daemon", "Slave_IO", "Slave_SQL", "Slave_worker"], keep),
  kill: (id) => q("KILL CONNECTION ?", Math.trunc(id)),
  // 0 = do not wait (MariaDB 10.3+: the range starts at 0, like NOWAIT)
  lockWaitTimeout: (s) => q("SET SESSION lock_wait_timeout = ?", Math.max(0, Math.round(s))),
  // The old primary's own transactions are in its binlog, not in gtid_slave_pos; without this,
  // MASTER_USE_GTID=slave_pos would ask the new primary for them again
  // (https://mariadb.com/kb/en/gtid/#using-current_pos-vs-slave_pos).
  prepareRejoin: () => [q("SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos")],
};

export const mysql8: Flavour = {
  name: "mysql-8",
  gtidKind: "mysql",
  showReplicaStatus: () => q("SHOW REPLICA STATUS"),
  parseReplicaStatus: (r) => ({
    source: `${str(r.Source_Host)}:${str(r.Source_Port)}`,
    ioRunning: yes(r.Replica_IO_Running),
    sqlRunning: yes(r.Replica_SQL_Running),
    lagSeconds: lag(r.Seconds_Behind_Source),
    lastError: firstError(r.Last_IO_Error, r.Last_SQL_Error),
    gtidReceived: str(r.Retrieved_Gtid_Set),
    readPos: `${str(r.Source_Log_File)}:${str(r.Read_Source_Log_Pos)}`,
    relayFile: str(r.Relay_Log_File),
    relayPos: Number(r.Relay_Log_Pos) || 0,
    sqlIdle: /read all relay log/i.test(str(r.Replica_SQL_Running_State)),
    receiverOn: str(r.Replica_IO_Running) !== "No" && str(r.Replica_IO_Running) !== "",
  }),
  // SOURCE_AUTO_POSITION=1: GTID auto-positioning; GET_SOURCE_PUBLIC_KEY=1: caching_sha2_password
  // over a connection without TLS.
  changeSource: (s) =>
    q(
      "CHANGE REPLICATION SOURCE TO SOURCE_HOST=?, SOURCE_PORT=?, SOURCE_USER=?, SOURCE_PASSWORD=?, SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_HEARTBEAT_PERIOD=?",
      s.host, s.port, s.user, s.password, HEARTBEAT_PERIOD_S,
    ),
  receivedHeartbeats: () => q("SELECT COUNT_RECEIVED_HEARTBEATS AS n FROM performance_schema.replication_connection_status"),
  startReplicaSql: () => q("START REPLICA SQL_THREAD"),
  relayLogEvents: (file, pos, limit) => q(`SHOW RELAYLOG EVENTS IN ? FROM ${Math.trunc(pos)} LIMIT ${Math.trunc(limit)}`, file),
  startReplica: () => q("START REPLICA"),
  stopReplica: () => q("STOP REPLICA"),
  stopReplicaIo: () => q("STOP REPLICA IO_THREAD"),
  resetReplicaAll: () => q("RESET REPLICA ALL"),
  // super_read_only=ON implies read_only=ON; read_only=OFF implies super_read_only=OFF. Both
  // are set explicitly so the statements say what they mean.
  readOnly: (on) =>
    on
      ? [q("SET GLOBAL read_only = ON"), q("SET GLOBAL super_read_only = ON")]
      : [q("SET GLOBAL super_read_only = OFF"), q("SET GLOBAL read_only = OFF")],
  // INSTALL PLUGIN fails when already installed: the driver skips what is in
  // information_schema.PLUGINS (the statements are listed in that order).
  installSemiSync: () => [
    q("SELECT PLUGIN_NAME AS name FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN (?, ?)", "rpl_semi_sync_source", "rpl_semi_sync_replica"),
    q("INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'"),
    q("INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'"),
  ],
  semiSyncPrimary: (timeoutMs) => [
    q("SET GLOBAL rpl_semi_sync_source_wait_point = AFTER_SYNC"),
    q("SET GLOBAL rpl_semi_sync_source_timeout = ?", Math.max(0, Math.round(timeoutMs))),
    q("SET GLOBAL rpl_semi_sync_replica_enabled = OFF"),
    q("SET GLOBAL rpl_semi_sync_source_enabled = ON"),
  ],
  semiSyncReplica: () => [
    q("SET GLOBAL rpl_semi_sync_source_enabled = OFF"),
    q("SET GLOBAL rpl_semi_sync_replica_enabled = ON"),
  ],
  semiSyncSourceOff: () => [q("SET GLOBAL rpl_semi_sync_source_enabled = OFF")],
  // MySQL 8's replica side has no kill connection on STOP REPLICA
  beforeStopReplica: () => [],
  statusVariables: () => ({
    sql: q(
      "SHOW GLOBAL VARIABLES WHERE Variable_name IN (?, ?, ?, ?, ?)",
      "read_only", "super_read_only", "gtid_executed", "rpl_semi_sync_source_enabled", "rpl_semi_sync_replica_enabled",
    ),
    names: {
      readOnly: ["read_only", "super_read_only"],
      gtidExecuted: "gtid_executed",
      semiSyncSource: "rpl_semi_sync_source_enabled",
      semiSyncReplica: "rpl_semi_sync_replica_enabled",
    },
  }),
  executedGtid: () => q("SELECT @@GLOBAL.gtid_executed AS gtid"),
  binlogState: () => q("SELECT @@GLOBAL.gtid_executed AS gtid"),
  // WAIT_FOR_EXECUTED_GTID_SET(set, timeout s): 0 reached, 1 timed out; an error is thrown.
  waitForGtid: (pos, timeoutMs) => q("SELECT WAIT_FOR_EXECUTED_GTID_SET(?, ?) AS r", pos, timeoutMs / 1000),
  waitResult: (r) => (r === null || r === undefined ? "error" : Number(r) === 0 ? "reached" : Number(r) === 1 ? "timeout" : "error"),
  createReplUser: (user, password, host) => [
    q("CREATE USER IF NOT EXISTS ?@? IDENTIFIED WITH caching_sha2_password BY ?", user, host, password),
    q("ALTER USER ?@? IDENTIFIED WITH caching_sha2_password BY ?", user, host, password),
    q("GRANT REPLICATION SLAVE ON *.* TO ?@?", user, host),
  ],
  // Replication applier/receiver threads are "system user" with command "Connect"/"Query";
  // the user filter catches them. "Binlog Dump GTID" is a replica's dump thread.
  clientConnections: (keep) => processlist(["Binlog Dump", "Binlog Dump GTID", "Daemon"], keep),
  kill: (id) => q("KILL CONNECTION ?", Math.trunc(id)),
  // MySQL's lock_wait_timeout starts at 1 s
  lockWaitTimeout: (s) => q("SET SESSION lock_wait_timeout = ?", Math.max(1, Math.round(s))),
  // SOURCE_AUTO_POSITION sends gtid_executed: nothing to prepare.
  prepareRejoin: () => [],
};

export function flavourByName(name: string): Flavour | null {
  if (name === "mariadb" || name === mariadb.name) return mariadb;
  if (name === "mysql" || name === "mysql8" || name === mysql8.name) return mysql8;
  return null;
}
