// cli/commands: the command modules load lazily (the agent never evaluates them), so the
// names the CLI dispatches on are listed apart from the modules. The two must agree.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { COMMAND_NAMES, loadCommands } from "../../agent/cli/commands.ts";

const s = suite("cli/commands");

s("COMMAND_NAMES and the loaded commands agree, name by name and in order", async () => {
  const cmds = await loadCommands();
  assert.equal(cmds.map((c) => c.name), [...COMMAND_NAMES]);
  for (const c of cmds) assert.ok(c.usage.length > 0 && typeof c.run === "function", `${c.name}: usage and run`);
});

s.run();
