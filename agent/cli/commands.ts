// Commands that parse their own arguments (each in its own file under cli/ or provision/),
// registered here in one list so `bollard --help` and dispatch stay in one place. Each gets
// the words after its name, the config path and the Io, and returns an exit code (0 ok,
// 1 failure, 2 usage or config error). What a command is: types.ts.
//
// The command modules are loaded only when a command (or --help) needs them: `bollard agent`
// never evaluates them, nor what only they use (the console, flash, seed generation, diag's
// tar writer): ~1 MB less RSS for the agent (docs/hardware.md "Idle cost"). esbuild turns
// each import() into a lazy initialiser inside the one bundle file.
import type { SubCommand } from "./types.ts";

/** Registered commands' names, in help order. Add the name here and the module in loadCommands(). */
export const COMMAND_NAMES = [
  "nodes", "services", "ready", "logs", "events", "alarms", "console", "diag",
  "switchover", "failover", "maintenance", "ha", "rejoin", "vm", "backup", "restore", "upgrade", "seed", "flash", "users", "site",
] as const;

/** The registered commands, in COMMAND_NAMES' order (a unit test checks the two agree). */
export async function loadCommands(): Promise<SubCommand[]> {
  const [views, alarms, cons, diag, ha, seed, flash, upgrade, users, ready, vm, site, backup] = await Promise.all([
    import("./views-cmd.ts"), import("./alarms-cmd.ts"), import("./console-cmd.ts"), import("./diag.ts"),
    import("./ha-cmd.ts"), import("../provision/seed-cmd.ts"), import("../provision/flash.ts"), import("./upgrade-cmd.ts"), import("./users-cmd.ts"),
    import("./ready-cmd.ts"), import("./vm-cmd.ts"), import("./site-cmd.ts"), import("./backup-cmd.ts"),
  ]);
  return [
    views.nodesCommand, views.servicesCommand, ready.readyCommand, views.logsCommand, views.eventsCommand, alarms.alarmsCommand, cons.consoleCommand,
    diag.diagCommand, ha.switchoverCommand, ha.failoverCommand, ha.maintenanceCommand, ha.haCommand, ha.rejoinCommand, vm.vmCommand, backup.backupCommand, backup.restoreCommand, upgrade.upgradeCommand, seed.seedCommand, flash.flashCommand,
    users.usersCommand, site.siteCommand,
  ];
}
