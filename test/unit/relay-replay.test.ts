// The pure parts of the relay log replay (agent/resources/relay-replay.ts): which files, from
// which position. The replay itself runs against real MariaDB in test/broker/mysql-promote.test.ts.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { relayFilesFrom, startPosition } from "../../agent/resources/relay-replay.ts";

test("the relay log files from the current one on, in the index's order, relative to the datadir", () => {
  const index = "./r-bin.000001\n./r-bin.000002\n./r-bin.000003\n";
  assert.equal(relayFilesFrom(index, "/var/lib/mysql/", "r-bin.000002"), ["/var/lib/mysql/r-bin.000002", "/var/lib/mysql/r-bin.000003"]);
  assert.equal(relayFilesFrom("/abs/r.000004\n", "/d", "./r.000004"), ["/abs/r.000004"]);
});

test("a current file the index does not list: nothing is replayed, and the error names both", () => {
  assert.throws(() => relayFilesFrom("./r-bin.000001\n", "/d", "r-bin.000009"), /r-bin.000009 is not in the relay log index \(r-bin.000001\)/);
  assert.throws(() => relayFilesFrom("", "/d", "r-bin.000001"), /\(empty\)/);
});

test("the start position keeps the last GTID of each domain; a malformed one is refused", () => {
  assert.is(startPosition("0-1-37"), "0-1-37");
  assert.is(startPosition("0-1-37,1-2-5"), "0-1-37,1-2-5");
  assert.is(startPosition("0-1-37, 0-2-40"), "0-2-40");
  assert.throws(() => startPosition("0-1-x"), /not a MariaDB GTID: "0-1-x"/);
});

test.run();
