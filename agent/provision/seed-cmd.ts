// `bollard seed`: which of its three forms the words ask for, each done in its own file:
//   bollard seed --cluster NAME --out DIR [options]   write a cluster's seeds (seed-gen.ts)
//   bollard seed check FILE                           validate a seed (seed.ts)
//   bollard seed apply FILE [--root DIR]              first boot: the node's files (seed-apply.ts)
import type { CommandContext, SubCommand } from "../cli/types.ts";
import { describeSeed, readSeed, seedErrors } from "./seed.ts";
import { applyCommand } from "./seed-apply.ts";
import { GEN_USAGE, generateCommand } from "./seed-gen.ts";

const USAGE = [
  "seed --cluster NAME --out DIR [...]   write the seed files of a new cluster (seed --help)",
  "seed check FILE            validate a seed file",
  "seed apply FILE [--root DIR]   first boot: write this node's files from its seed",
];

export const seedCommand: SubCommand = {
  name: "seed",
  usage: USAGE,
  // the generator's options, then the other two forms
  help: `${GEN_USAGE}\n\nand:\n${USAGE.slice(1).map((l) => `  bollard ${l}`).join("\n")}`,
  async run(args: string[], ctx: CommandContext): Promise<number> {
    if (args[0] === "check") return checkCommand(args.slice(1), ctx);
    if (args[0] === "apply") return applyCommand(args.slice(1), ctx);
    return generateCommand(args, ctx);
  },
};

async function checkCommand(args: string[], ctx: CommandContext): Promise<number> {
  if (args.length !== 1 || args[0]!.startsWith("-")) {
    ctx.io.err('bollard: expected: seed check FILE\nrun "bollard --help" for usage');
    return 2;
  }
  const r = await readSeed(args[0]!);
  if (!r.ok) {
    ctx.io.err(seedErrors(args[0]!, r.errors));
    return 2;
  }
  ctx.io.out(`${args[0]}: ok: ${describeSeed(r.seed)}`);
  return 0;
}
