// The VM report (issue 14, ha/vm-types.ts VmNodeFacts): what each node's agent says about the
// VMs it runs, the replica disks it serves and its mirrors, sent to every peer twice a second
// and at once on a change (runtime/vm-runtime.ts). The leader's VM manager decides from these.
// Its own file so that messages.ts only lists it in the union.
import { z } from "zod";

const name = z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, "a node or VM name");
const count = z.number().int().nonnegative();
const text = (n: number) => z.string().max(n);

const Mirror = z
  .object({ to: name, state: z.enum(["syncing", "ready", "broken"]), done: z.number().min(0).max(1), error: text(300).optional() })
  .strict();

export const VmStateReport = z
  .object({
    name,
    state: z.enum(["running", "paused", "incoming", "migrated", "stopped", "failed"]),
    inst: text(64).optional(),
    startedAt: z.number().nonnegative().optional(),
    mirror: Mirror.nullable(),
    migration: z.object({ to: name, status: text(32), ms: z.number().nonnegative().optional(), downtimeMs: z.number().nonnegative().optional() }).strict().optional(),
    incoming: z.object({ port: z.number().int().min(1).max(65535), done: z.boolean() }).strict().optional(),
    fails: count,
    pausedForMirror: z.boolean().optional(),
    busy: text(32).optional(),
    error: text(300).optional(),
  })
  .strict();

export const VmReport = z
  .object({
    // PROTOCOL_VERSION (messages.ts), written out: messages.ts imports this file
    v: z.literal(1),
    t: z.literal("vm"),
    epoch: count,
    defs: z.string().regex(/^[0-9a-f]{16}$/, "16 hex digits"),
    storage: z.boolean(),
    exports: z.array(name).max(64),
    vms: z.array(VmStateReport).max(64),
  })
  .strict();
export type VmReport = z.infer<typeof VmReport>;

/**
 * Which copy of each VM's replica disks the sender holds (vm-storage.ts copyId), so that a
 * holder rebuilds its mirror there incrementally only over the copy its dirty bitmap covers
 * (ha/vm-rebuild.ts). Its own message type, not a field of "vm": an older agent drops it as a
 * schema reject, and the holder then copies in full (docs/bus.md "Versions").
 */
export const VmCopies = z
  .object({
    v: z.literal(1),
    t: z.literal("vm-copies"),
    copies: z.record(name, z.string().regex(/^[0-9a-z-]{1,400}$/, "a copy id")),
  })
  .strict();
export type VmCopies = z.infer<typeof VmCopies>;
