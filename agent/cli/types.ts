// What a command is, apart from the table that lists them (commands.ts) and the dispatcher
// (cli.ts), so that the commands, the table and the dispatcher import this and not each other.

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export interface BuildInfo {
  version: string;
  rev: string;
}

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
