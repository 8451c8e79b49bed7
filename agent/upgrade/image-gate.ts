// `bollard upgrade image-gate`: the boot's health gate (docs/upgrade.md). See below.
import type { Io } from "../cli/types.ts";

export async function imageGate(_socket: string, _deadlineMs: number, io: Io): Promise<number> {
  io.err("bollard: the image gate is not built yet");
  return 1;
}
