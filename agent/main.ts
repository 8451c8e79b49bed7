// `bollard <command>`: the bundle's entry point (dist/bollard.js). Thin: the commands live in
// cli/cli.ts, the daemon in agent.ts. build.mjs defines the version and git revision.
import { runCli } from "./cli/cli.ts";

declare const __BOLLARD_VERSION__: string;
declare const __BOLLARD_REV__: string;

const build = {
  version: typeof __BOLLARD_VERSION__ === "string" ? __BOLLARD_VERSION__ : "0.0.0-dev",
  rev: typeof __BOLLARD_REV__ === "string" ? __BOLLARD_REV__ : "source",
};

const io = {
  out: (text: string) => void process.stdout.write(text + "\n"),
  err: (text: string) => void process.stderr.write(text + "\n"),
};

runCli(process.argv.slice(2), io, build).then(
  (code) => exit(code),
  (e: unknown) => {
    io.err(`bollard: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    exit(1);
  },
);

/** Exits once stdout and stderr have drained (a piped `bollard status` must not be cut short). */
function exit(code: number): void {
  let pending = 2;
  const done = () => --pending === 0 && process.exit(code);
  process.stdout.write("", done);
  process.stderr.write("", done);
}
