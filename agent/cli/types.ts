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
  /** the --config path given (anywhere on the line), or the default */
  configPath: string;
  /** whether --config was given explicitly */
  configGiven: boolean;
  /** --json, given anywhere on the line (a command may also take it after its name) */
  json?: boolean;
  io: Io;
  build: BuildInfo;
}

export interface SubCommand {
  name: string;
  /** one help line each: "NAME ARGS   what it does" */
  usage: string[];
  /** what `bollard NAME --help` prints, when more than the usage lines (cli.ts commandHelp) */
  help?: string;
  run(args: string[], ctx: CommandContext): Promise<number>;
}
