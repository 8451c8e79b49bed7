// Commands that parse their own arguments (each in its own file under ops/), registered
// here in one list so `bollard --help` and dispatch stay in one place. Each gets the words
// after its name, the config path and the Io, and returns an exit code (0 ok, 1 failure,
// 2 usage or config error).
import type { BuildInfo, Io } from "./cli.ts";
import { alarmsCommand } from "./alarms-cmd.ts";
import { consoleCommand } from "./console-cmd.ts";
import { diagCommand } from "./diag.ts";
import { flashCommand } from "./flash.ts";
import { seedCommand } from "./seed.ts";
import { eventsCommand, logsCommand, nodesCommand, servicesCommand } from "./views-cmd.ts";
import { haCommand, maintenanceCommand, rejoinCommand, switchoverCommand } from "./ha-cmd.ts";

export interface CommandContext {
  /** the --config path given before the command, or the default */
  configPath: string;
  /** whether --config was given explicitly */
  configGiven: boolean;
  io: Io;
  build: BuildInfo;
}

export interface SubCommand {
  name: string;
  /** one help line each: "NAME ARGS   what it does" */
  usage: string[];
  run(args: string[], ctx: CommandContext): Promise<number>;
}

/** Registered commands. Add one line per command module. */
export const COMMANDS: SubCommand[] = [
  nodesCommand, servicesCommand, logsCommand, eventsCommand, alarmsCommand, consoleCommand, diagCommand,
  switchoverCommand, maintenanceCommand, haCommand, rejoinCommand, seedCommand, flashCommand,
];
