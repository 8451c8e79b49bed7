// `test/lab/lab exec NODE bollard ARGS` for every command `bollard --help` lists, as
// docs/lab.md promises: the lab puts --config first and the CLI takes it anywhere, so no
// command refuses it. For each command: `--help` (its usage, exit 0); and for each that only
// reads (status, nodes, services, ready, logs, events, alarms, config check, console --once, diag
// to a temporary file) a real run against the lab's running cluster. Commands that change
// the cluster or a disk get --help only. A command added to the CLI fails this test until it
// is put in one of the two lists.
// Needs root and the lab's packages; builds dist/bollard.js if it is missing.
//   node --import tsx test/lab/exec.test.ts
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { NODES, ensureBundle, lab, labContext, labOk, skipReason, waitAgreed, type Run } from "./helpers.ts";

const l = labContext();
const skip = skipReason();
const TMP = mkdtempSync(join(tmpdir(), "bollard-exec-lab-"));
let up = false;

/** the real runs of each command that only reads, and what each must print (each exits 0) */
const READ: Record<string, { args: string[]; out: RegExp }[]> = {
  status: [{ args: ["status"], out: /role\s+(leader|follower)/ }, { args: ["status", "--json"], out: /"live":true/ }],
  nodes: [{ args: ["nodes"], out: /node3/ }, { args: ["nodes", "--no-hw", "--json"], out: /"live":true/ }],
  services: [{ args: ["services"], out: /mysql/i }, { args: ["services", "--json"], out: /"live":true/ }],
  ready: [{ args: ["ready"], out: /can lose any|losing node\d would|not judged/ }, { args: ["ready", "--json"], out: /"live":true/ }],
  logs: [{ args: ["logs", "-n", "5"], out: /./ }, { args: ["logs", "--node", "node2", "-n", "3", "--json"], out: /^\{/ }],
  events: [{ args: ["events", "--node", "all", "-n", "5"], out: /./ }],
  alarms: [{ args: ["alarms"], out: /alarms? \(cluster-wide/ }, { args: ["alarms", "--all", "--json"], out: /"live":true/ }],
  config: [{ args: ["config", "check"], out: /: ok: cluster lab, node node1/ }],
  console: [{ args: ["console", "--once"], out: /Nodes/ }],
  diag: [{ args: ["diag", "--out", join(TMP, "diag.tar.gz")], out: /diag\.tar\.gz/ }],
};
/** commands that change the cluster, a disk or a node: --help only */
/** (backup reads too, but the lab has backups only in backup.test.ts; vm, site, upgrade and users read too, with list/status subcommands, but their lab cases live in
 *  vm.test.ts, site.test.ts, upgrade.test.ts and web.test.ts, on labs that have VMs, a site, bundles, users) */
const HELP_ONLY = ["agent", "assign", "unassign", "members", "switchover", "failover", "maintenance", "ha", "rejoin", "seed", "flash", "vm", "site", "upgrade", "users", "backup", "restore"];

const exec = (...args: string[]): Run => lab(l, "exec", "node1", "bollard", ...args);
const said = (r: Run) => `exit ${r.code}\n${r.out.slice(0, 1500)}${r.err.slice(0, 1500)}`;
const OPTION_ERROR = /Unknown option|unexpected argument|run "bollard --help" for usage/i;

/** The commands `bollard --help` lists under "commands:", in its order, each once. */
function commands(help: string): string[] {
  const block = help.split("\ncommands:\n")[1]?.split("\n\n")[0] ?? "";
  return [...new Set(block.split("\n").map((line) => /^ {2}([a-z][a-z-]*)/.exec(line)?.[1]).filter((c): c is string => !!c))];
}

const s = suite("lab exec node1 bollard: every command");

s.before(() => {
  if (!skip) ensureBundle();
});
s.after(() => {
  if (up) lab(l, "down");
  up = false;
  rmSync(TMP, { recursive: true, force: true });
});

if (skip) {
  console.log(`lab exec: skipped: ${skip}`);
  s.skip("every bollard command through lab exec", () => {});
} else {
  let listed: string[] = [];

  s("starts from a clean machine; up: the three agents agree on a leader", async () => {
    const r = lab(l, "check-clean");
    assert.is(r.code, 0, `a lab (or its leftovers) is already on this machine; run test/lab/lab down first\n${r.err}`);
    labOk(l, "up");
    up = true;
    await waitAgreed(l, NODES, 60_000);
  });

  s("bollard --help lists the commands, and each is in this test's lists", () => {
    const r = exec("--help");
    assert.is(r.code, 0, said(r));
    listed = commands(r.out);
    console.log(`  bollard --help lists ${listed.length}: ${listed.join(" ")}`);
    assert.ok(listed.length >= 19, `commands found in --help: ${listed.join(" ")}`);
    for (const c of listed) assert.ok(c in READ || HELP_ONLY.includes(c), `"${c}": add it to READ or HELP_ONLY`);
  });

  s("lab exec node1 bollard COMMAND --help: the command's usage, exit 0, for every command", () => {
    for (const c of listed) {
      const r = exec(c, "--help");
      console.log(`  bollard ${c} --help -> exit ${r.code} (${Math.round(r.ms)} ms): ${r.out.split("\n")[0]}`);
      assert.is(r.code, 0, `bollard ${c} --help: ${said(r)}`);
      assert.match(r.out, new RegExp(`^usage: bollard ${c}( |$)`, "m"), `bollard ${c} --help: ${said(r)}`);
      assert.not.match(r.err, OPTION_ERROR, `bollard ${c} --help`);
    }
  });

  s("lab exec node1 bollard COMMAND ARGS: each read-only command for real, exit 0, no option error", () => {
    for (const c of listed.filter((x) => x in READ)) {
      for (const { args, out } of READ[c]!) {
        const r = exec(...args);
        console.log(`  bollard ${args.join(" ")} -> exit ${r.code} (${Math.round(r.ms)} ms, ${r.out.split("\n").length} lines)`);
        assert.not.match(r.err, OPTION_ERROR, `bollard ${args.join(" ")}: ${said(r)}`);
        assert.is(r.code, 0, `bollard ${args.join(" ")}: ${said(r)}`);
        assert.match(r.out, out, `bollard ${args.join(" ")}: ${said(r)}`);
      }
    }
    assert.ok(statSync(join(TMP, "diag.tar.gz")).size > 0, "diag wrote its bundle");
  });

  s("--config given after the command, as the lab once appended it, is taken too", () => {
    for (const c of ["services", "nodes", "alarms"]) {
      const r = lab(l, "exec", "node1", "bollard", c, "--json", "--config", `${l.S}/node1/bollard.yaml`);
      assert.is(r.code, 0, `bollard ${c} --json --config FILE: ${said(r)}`);
      assert.match(r.out, /"live":true/);
    }
  });

  s("down leaves nothing behind", () => {
    labOk(l, "down");
    up = false;
    labOk(l, "check-clean");
  });
}

s.run();
