// `bollard upgrade IMAGE`: the A/B image upgrade of this node (docs/upgrade.md). See below.
import type { Io } from "../cli/types.ts";

export async function imageUpgrade(path: string, _o: { deadlineMs: number; reboot: boolean }, _stateDir: string, io: Io): Promise<number> {
  io.err(`bollard: ${path}: the image upgrade is not built yet`);
  return 1;
}
