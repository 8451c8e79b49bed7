// Every statement each flavour produces, as the exact text the server receives (parameters
// escaped in by mysql2), so that a change to any of them shows up here (issue 4 item 1).
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { type Flavour, type Sql, flavourByName, mariadb, mysql8, render } from "../../agent/resources/mysql-flavour.ts";

const all = (stmts: Sql[]) => stmts.map(render);
const SRC = { host: "198.18.0.2", port: 3306, user: "repl", password: "s3cr'et" };

const Maria = suite("flavour: MariaDB 10.11");

Maria("replication control", () => {
  assert.is(render(mariadb.showReplicaStatus()), "SHOW SLAVE STATUS");
  assert.is(render(mariadb.startReplica()), "START SLAVE");
  assert.is(render(mariadb.stopReplica()), "STOP SLAVE");
  assert.is(render(mariadb.stopReplicaIo()), "STOP SLAVE IO_THREAD");
  assert.is(render(mariadb.resetReplicaAll()), "RESET SLAVE ALL");
});

Maria("change master: GTID slave_pos, retry 1 s, parameters escaped", () => {
  assert.is(
    render(mariadb.changeSource(SRC)),
    "CHANGE MASTER TO MASTER_HOST='198.18.0.2', MASTER_PORT=3306, MASTER_USER='repl', MASTER_PASSWORD='s3cr\\'et', MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1, MASTER_HEARTBEAT_PERIOD=0.5",
  );
  const s = mariadb.changeSource(SRC);
  assert.not.match(s.sql, "s3cr", "the password is a parameter, not in the statement text that is logged");
  assert.is(render(mariadb.changeSource({ ...SRC, host: "x', MASTER_PORT=1; DROP TABLE t; --" })).includes("'x\\', MASTER_PORT=1; DROP TABLE t; --'"), true);
});

Maria("read-only: read_only only (no super_read_only in 10.11)", () => {
  assert.equal(all(mariadb.readOnly(true)), ["SET GLOBAL read_only = ON"]);
  assert.equal(all(mariadb.readOnly(false)), ["SET GLOBAL read_only = OFF"]);
});

Maria("semi-sync: built in; source AFTER_SYNC on the primary only", () => {
  assert.equal(mariadb.installSemiSync(), []);
  assert.equal(all(mariadb.semiSyncPrimary(10000)), [
    "SET GLOBAL rpl_semi_sync_master_wait_point = AFTER_SYNC",
    "SET GLOBAL rpl_semi_sync_master_timeout = 10000",
    "SET GLOBAL rpl_semi_sync_slave_enabled = OFF",
    "SET GLOBAL rpl_semi_sync_master_enabled = ON",
  ]);
  assert.equal(all(mariadb.semiSyncReplica()), [
    "SET GLOBAL rpl_semi_sync_master_enabled = OFF",
    "SET GLOBAL rpl_semi_sync_slave_enabled = ON",
  ]);
  assert.equal(all(mariadb.semiSyncSourceOff()), ["SET GLOBAL rpl_semi_sync_master_enabled = OFF"]);
  // before a STOP SLAVE whose source may be powered off: STOP SLAVE of a semi-sync replica
  // connects to the source to KILL its dump thread; 2.01 s against a dead one, 1.02 s with this
  assert.equal(all(mariadb.beforeStopReplica()), ["SET GLOBAL rpl_semi_sync_slave_kill_conn_timeout = 1"]);
});

Maria("GTID: executed, binlog state, wait", () => {
  assert.is(render(mariadb.executedGtid()), "SELECT @@GLOBAL.gtid_current_pos AS gtid");
  assert.is(render(mariadb.binlogState()), "SELECT @@GLOBAL.gtid_binlog_state AS gtid");
  assert.is(render(mariadb.waitForGtid("0-1-281,1-2-5", 1500)), "SELECT MASTER_GTID_WAIT('0-1-281,1-2-5', 1.5) AS r");
  assert.is(mariadb.waitResult("0"), "reached");
  assert.is(mariadb.waitResult(-1), "timeout");
  assert.is(mariadb.waitResult(null), "error");
  assert.equal(all(mariadb.prepareRejoin()), ["SET GLOBAL gtid_slave_pos = @@GLOBAL.gtid_binlog_pos"]);
});

Maria("status variables", () => {
  const { sql, names } = mariadb.statusVariables();
  assert.is(
    render(sql),
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'gtid_current_pos', 'rpl_semi_sync_master_enabled', 'rpl_semi_sync_slave_enabled')",
  );
  assert.equal(names, {
    readOnly: ["read_only"], gtidExecuted: "gtid_current_pos",
    semiSyncSource: "rpl_semi_sync_master_enabled", semiSyncReplica: "rpl_semi_sync_slave_enabled",
  });
});

Maria("replication user, host pattern configurable", () => {
  assert.equal(all(mariadb.createReplUser("repl", "pw'1", "127.%")), [
    "CREATE USER IF NOT EXISTS 'repl'@'127.%' IDENTIFIED BY 'pw\\'1'",
    "ALTER USER 'repl'@'127.%' IDENTIFIED BY 'pw\\'1'",
    "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'127.%'",
  ]);
  assert.is(render(mariadb.createReplUser("repl", "x", "198.18.0.0/255.255.255.0")[2]!), "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'198.18.0.0/255.255.255.0'");
});

Maria("client connections to kill, kill, lock wait", () => {
  assert.is(
    render(mariadb.clientConnections(["repl"])),
    "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()" +
      " AND USER NOT IN ('system user', 'event_scheduler', 'repl')" +
      " AND COMMAND NOT IN ('Binlog Dump', 'Daemon', 'Slave_IO', 'Slave_SQL', 'Slave_worker')",
  );
  assert.is(render(mariadb.kill(42)), "KILL CONNECTION 42");
  assert.is(render(mariadb.kill(42.9)), "KILL CONNECTION 42");
  assert.is(render(mariadb.lockWaitTimeout(1)), "SET SESSION lock_wait_timeout = 1");
  assert.is(render(mariadb.lockWaitTimeout(0)), "SET SESSION lock_wait_timeout = 0");
});

Maria("SHOW SLAVE STATUS row", () => {
  const row = {
    Master_Host: "127.0.2.1", Master_Port: 3306, Slave_IO_Running: "Yes", Slave_SQL_Running: "No",
    Seconds_Behind_Master: null, Last_IO_Error: "", Last_SQL_Error: "Duplicate entry", Gtid_IO_Pos: "0-1-9",
    Master_Log_File: "node1-bin.000003", Read_Master_Log_Pos: 18058045, Relay_Log_File: "node2-relay-bin.000004", Relay_Log_Pos: 1466,
    Slave_SQL_Running_State: "Slave has read all relay log; waiting for more updates",
  };
  assert.equal(mariadb.parseReplicaStatus(row), {
    source: "127.0.2.1:3306", ioRunning: true, sqlRunning: false, lagSeconds: null, lastError: "Duplicate entry", gtidReceived: "0-1-9",
    readPos: "node1-bin.000003:18058045", relayFile: "node2-relay-bin.000004", relayPos: 1466, sqlIdle: true, receiverOn: true,
  });
  assert.is(mariadb.parseReplicaStatus({ ...row, Seconds_Behind_Master: "3" }).lagSeconds, 3);
  assert.is(mariadb.parseReplicaStatus({ ...row, Slave_IO_Running: "Connecting", Last_SQL_Error: "" }).lastError, null);
  assert.is(mariadb.parseReplicaStatus({ ...row, Slave_IO_Running: "Connecting" }).ioRunning, false);
  assert.is(mariadb.parseReplicaStatus({ ...row, Slave_IO_Running: "Connecting" }).receiverOn, true, "connecting: the receiver is on");
  assert.is(mariadb.parseReplicaStatus({ ...row, Slave_IO_Running: "No" }).receiverOn, false, "a detach stops the receiver alone");
  assert.is(mariadb.parseReplicaStatus({ ...row, Slave_SQL_Running_State: "Reading event from the relay log" }).sqlIdle, false);
});

Maria.run();

const My = suite("flavour: MySQL 8.0.26+");

My("replication control", () => {
  assert.is(render(mysql8.showReplicaStatus()), "SHOW REPLICA STATUS");
  assert.is(render(mysql8.startReplica()), "START REPLICA");
  assert.is(render(mysql8.stopReplica()), "STOP REPLICA");
  assert.is(render(mysql8.stopReplicaIo()), "STOP REPLICA IO_THREAD");
  assert.is(render(mysql8.resetReplicaAll()), "RESET REPLICA ALL");
});

My("change replication source: auto-position, retry 1 s, public key", () => {
  assert.is(
    render(mysql8.changeSource(SRC)),
    "CHANGE REPLICATION SOURCE TO SOURCE_HOST='198.18.0.2', SOURCE_PORT=3306, SOURCE_USER='repl', SOURCE_PASSWORD='s3cr\\'et', SOURCE_AUTO_POSITION=1, SOURCE_CONNECT_RETRY=1, GET_SOURCE_PUBLIC_KEY=1, SOURCE_HEARTBEAT_PERIOD=0.5",
  );
  assert.not.match(mysql8.changeSource(SRC).sql, "s3cr");
});

My("read-only: read_only and super_read_only", () => {
  assert.equal(all(mysql8.readOnly(true)), ["SET GLOBAL read_only = ON", "SET GLOBAL super_read_only = ON"]);
  assert.equal(all(mysql8.readOnly(false)), ["SET GLOBAL super_read_only = OFF", "SET GLOBAL read_only = OFF"]);
});

My("semi-sync: plugins, source AFTER_SYNC on the primary only", () => {
  assert.equal(all(mysql8.installSemiSync()), [
    "SELECT PLUGIN_NAME AS name FROM information_schema.PLUGINS WHERE PLUGIN_NAME IN ('rpl_semi_sync_source', 'rpl_semi_sync_replica')",
    "INSTALL PLUGIN rpl_semi_sync_source SONAME 'semisync_source.so'",
    "INSTALL PLUGIN rpl_semi_sync_replica SONAME 'semisync_replica.so'",
  ]);
  assert.equal(all(mysql8.semiSyncPrimary(2500.4)), [
    "SET GLOBAL rpl_semi_sync_source_wait_point = AFTER_SYNC",
    "SET GLOBAL rpl_semi_sync_source_timeout = 2500",
    "SET GLOBAL rpl_semi_sync_replica_enabled = OFF",
    "SET GLOBAL rpl_semi_sync_source_enabled = ON",
  ]);
  assert.equal(all(mysql8.semiSyncReplica()), [
    "SET GLOBAL rpl_semi_sync_source_enabled = OFF",
    "SET GLOBAL rpl_semi_sync_replica_enabled = ON",
  ]);
  assert.equal(all(mysql8.semiSyncSourceOff()), ["SET GLOBAL rpl_semi_sync_source_enabled = OFF"]);
  assert.equal(all(mysql8.beforeStopReplica()), []);
});

My("GTID: executed, binlog state, wait", () => {
  const U = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
  assert.is(render(mysql8.executedGtid()), "SELECT @@GLOBAL.gtid_executed AS gtid");
  assert.is(render(mysql8.binlogState()), "SELECT @@GLOBAL.gtid_executed AS gtid");
  assert.is(render(mysql8.waitForGtid(`${U}:1-5`, 2000)), `SELECT WAIT_FOR_EXECUTED_GTID_SET('${U}:1-5', 2) AS r`);
  assert.is(mysql8.waitResult("0"), "reached");
  assert.is(mysql8.waitResult(1), "timeout");
  assert.is(mysql8.waitResult(undefined), "error");
  assert.equal(mysql8.prepareRejoin(), []);
});

My("status variables", () => {
  const { sql, names } = mysql8.statusVariables();
  assert.is(
    render(sql),
    "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('read_only', 'super_read_only', 'gtid_executed', 'rpl_semi_sync_source_enabled', 'rpl_semi_sync_replica_enabled')",
  );
  assert.equal(names.readOnly, ["read_only", "super_read_only"]);
});

My("replication user: caching_sha2_password", () => {
  assert.equal(all(mysql8.createReplUser("repl", "pw", "198.18.0.%")), [
    "CREATE USER IF NOT EXISTS 'repl'@'198.18.0.%' IDENTIFIED WITH caching_sha2_password BY 'pw'",
    "ALTER USER 'repl'@'198.18.0.%' IDENTIFIED WITH caching_sha2_password BY 'pw'",
    "GRANT REPLICATION SLAVE ON *.* TO 'repl'@'198.18.0.%'",
  ]);
});

My("client connections to kill, kill, lock wait", () => {
  assert.is(
    render(mysql8.clientConnections(["repl", "bollard"])),
    "SELECT ID AS id FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID()" +
      " AND USER NOT IN ('system user', 'event_scheduler', 'repl', 'bollard')" +
      " AND COMMAND NOT IN ('Binlog Dump', 'Binlog Dump GTID', 'Daemon')",
  );
  assert.is(render(mysql8.kill(7)), "KILL CONNECTION 7");
  assert.is(render(mysql8.lockWaitTimeout(0)), "SET SESSION lock_wait_timeout = 1", "MySQL's minimum");
});

My("SHOW REPLICA STATUS row", () => {
  const row = {
    Source_Host: "198.18.0.1", Source_Port: "3306", Replica_IO_Running: "Yes", Replica_SQL_Running: "Yes",
    Seconds_Behind_Source: 0, Last_IO_Error: "error connecting", Last_SQL_Error: "", Retrieved_Gtid_Set: "u:1-3",
    Source_Log_File: "binlog.000002", Read_Source_Log_Pos: "4096", Relay_Log_File: "relay.000002", Relay_Log_Pos: "157",
    Replica_SQL_Running_State: "Replica has read all relay log; waiting for more updates",
  };
  assert.equal(mysql8.parseReplicaStatus(row), {
    source: "198.18.0.1:3306", ioRunning: true, sqlRunning: true, lagSeconds: 0, lastError: "error connecting", gtidReceived: "u:1-3",
    readPos: "binlog.000002:4096", relayFile: "relay.000002", relayPos: 157, sqlIdle: true, receiverOn: true,
  });
});

My.run();

const ByName = suite("flavourByName");

ByName("names", () => {
  const f = (n: string): Flavour | null => flavourByName(n);
  assert.is(f("mariadb"), mariadb);
  assert.is(f("mariadb-10.11"), mariadb);
  assert.is(f("mysql"), mysql8);
  assert.is(f("mysql-8"), mysql8);
  assert.is(f("postgres"), null);
});

ByName.run();
