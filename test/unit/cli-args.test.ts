// cli/cli.ts in-process: every command's --help (usage, exit 0), and the global options
// (-c/--config, --json) anywhere on the line, taken out before a command parses its own words.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { BUILTIN, globalOptions, runCli } from "../../agent/cli/cli.ts";
import { COMMAND_NAMES } from "../../agent/cli/commands.ts";

async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runCli(argv, { out: (t) => void (out += `${t}\n`), err: (t) => void (err += `${t}\n`) }, { version: "0.0.0", rev: "test" });
  return { code, out, err };
}

/** every command of the CLI's table: the ones cli.ts runs itself and the registered ones */
const ALL = [...BUILTIN.map((b) => b.name), ...COMMAND_NAMES];

const Help = suite("bollard COMMAND --help");

Help("every command: --help and -h, after the command or before it, print its usage and exit 0", async () => {
  assert.ok(ALL.length >= 19, `${ALL.length} commands`);
  for (const name of ALL) {
    for (const argv of [[name, "--help"], [name, "-h"], ["--help", name]]) {
      const r = await cli(...argv);
      assert.is(r.code, 0, `bollard ${argv.join(" ")}: ${r.err}`);
      assert.is(r.err, "", `bollard ${argv.join(" ")}`);
      assert.match(r.out, new RegExp(`^usage: bollard ${name}( |$)`, "m"), `bollard ${argv.join(" ")}`);
    }
  }
});

Help("--help after a command's own words, and with the global options, is still that command's usage", async () => {
  for (const argv of [["seed", "check", "--help"], ["alarms", "ack", "--help"], ["members", "add", "--help"], ["logs", "-n", "5", "--help"], ["services", "--config", "/nonexistent.yaml", "--help"]]) {
    const r = await cli(...argv);
    assert.is(r.code, 0, `bollard ${argv.join(" ")}: ${r.err}`);
    assert.match(r.out, new RegExp(`^usage: bollard ${argv[0]} `, "m"));
  }
});

Help("bollard --help lists every command of the table; an unknown command's --help is a usage error", async () => {
  const r = await cli("--help");
  assert.is(r.code, 0);
  for (const name of ALL) assert.match(r.out, new RegExp(`^  ${name}( |$)`, "m"), name);
  const u = await cli("frobnicate", "--help");
  assert.is(u.code, 2);
  assert.match(u.err, 'unknown command "frobnicate"');
});

Help.run();

const Global = suite("global options anywhere on the line");

Global("globalOptions takes -c/--config in its four spellings and --json out of any place", () => {
  assert.equal(globalOptions(["services", "--config", "f.yaml"]), { config: "f.yaml", json: false, help: false, before: [], rest: ["services"] });
  assert.equal(globalOptions(["-c", "f.yaml", "nodes", "--no-hw", "--json"]), { config: "f.yaml", json: true, help: false, before: [], rest: ["nodes", "--no-hw"] });
  assert.equal(globalOptions(["logs", "-n", "5", "--config=f.yaml"]).rest, ["logs", "-n", "5"]);
  assert.equal(globalOptions(["status", "-cf.yaml"]).config, "f.yaml");
  assert.equal(globalOptions(["--json", "-v"]), { config: undefined, json: true, help: false, before: ["-v"], rest: [] });
  assert.equal(globalOptions(["alarms", "ack", "x", "--", "--json"]).rest, ["alarms", "ack", "x", "--", "--json"]);
  assert.throws(() => globalOptions(["services", "--config"]), /needs a value/);
});

let dir = "";
Global.before(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-cli-args-"));
  writeFileSync(
    join(dir, "good.yaml"),
    `cluster:\n  name: port-fms\n  node: node1\n  members:\n    - { name: node1, address: "127.0.1.1:1883" }\n    - { name: node2, address: "127.0.1.2:1883" }\n    - { name: node3, address: "127.0.1.3:1883" }\nbus:\n  password: s3cret\nstate_dir: ${dir}\n`,
  );
});
Global.after(() => rmSync(dir, { recursive: true, force: true }));

Global("--config after the command reaches the command (no 'Unknown option'): a missing file is named, exit 2", async () => {
  for (const argv of [["services"], ["nodes", "--no-hw"], ["alarms"], ["console", "--once"], ["logs"], ["events"], ["status"], ["diag"]]) {
    const r = await cli(...argv, "--config", join(dir, "missing.yaml"));
    assert.is(r.code, 2, `bollard ${argv.join(" ")}: ${r.err}`);
    assert.not.match(r.err, /Unknown option/i, argv.join(" "));
    assert.match(r.err, "missing.yaml: ", argv.join(" "));
  }
});

Global("--json before the command or after it: the command answers in JSON (the agent is down here: live false, exit 1)", async () => {
  for (const argv of [["--json", "alarms", "-c", join(dir, "good.yaml")], ["alarms", "--config", join(dir, "good.yaml"), "--json"], ["services", "--json", "-c", join(dir, "good.yaml")], ["--json", "status", "-c", join(dir, "good.yaml")]]) {
    const r = await cli(...argv);
    assert.is(r.code, 1, `bollard ${argv.join(" ")}: ${r.err}`);
    assert.is(JSON.parse(r.out).live, false, argv.join(" "));
  }
});

Global.run();
