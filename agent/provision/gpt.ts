// Reading a GUID partition table (UEFI 2.10 §5.3): the primary header at LBA 1 and its entry
// array, both checked against their CRC32s. `bollard flash` finds the seed partition in the
// table it has just written, and the image tests check the built layout. 512-byte sectors.
const SECTOR = 512;

export interface GptPartition {
  /** 1-based, as the kernel numbers partitions (sda1) */
  index: number;
  type: string;
  uuid: string;
  name: string;
  firstLba: number;
  lastLba: number;
}

export interface Gpt {
  diskGuid: string;
  firstUsableLba: number;
  lastUsableLba: number;
  partitions: GptPartition[];
}

export class GptError extends Error {}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3), as the GPT uses it; zlib.crc32 is not in Node 18. */
export function crc32(b: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = CRC_TABLE[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A GUID as text; the first three fields are little-endian on disk. */
export function guidText(b: Buffer): string {
  const h = (x: Buffer) => x.toString("hex");
  const le = (x: Buffer) => h(Buffer.from(x).reverse());
  return `${le(b.subarray(0, 4))}-${le(b.subarray(4, 6))}-${le(b.subarray(6, 8))}-${h(b.subarray(8, 10))}-${h(b.subarray(10, 16))}`.toUpperCase();
}

/** Reads the primary GPT through `read(byteOffset, length)`. */
export function readGpt(read: (pos: number, len: number) => Buffer): Gpt {
  const hdr = read(SECTOR, SECTOR);
  if (hdr.subarray(0, 8).toString("latin1") !== "EFI PART") throw new GptError("no GPT: no \"EFI PART\" signature at LBA 1");
  const hdrSize = hdr.readUInt32LE(12);
  if (hdrSize < 92 || hdrSize > SECTOR) throw new GptError(`GPT header size ${hdrSize} is not valid`);
  const copy = Buffer.from(hdr.subarray(0, hdrSize));
  const want = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== want) throw new GptError("the GPT header's CRC32 does not match: a damaged partition table");
  const entriesLba = Number(hdr.readBigUInt64LE(72));
  const count = hdr.readUInt32LE(80);
  const size = hdr.readUInt32LE(84);
  if (count > 1024 || size < 128 || size > 1024) throw new GptError(`GPT entry array of ${count} x ${size} bytes is not valid`);
  const arr = read(entriesLba * SECTOR, count * size);
  if (crc32(arr) !== hdr.readUInt32LE(88)) throw new GptError("the GPT entry array's CRC32 does not match: a damaged partition table");
  const partitions: GptPartition[] = [];
  for (let i = 0; i < count; i++) {
    const e = arr.subarray(i * size, (i + 1) * size);
    if (e.subarray(0, 16).every((x) => x === 0)) continue;
    const raw = e.subarray(56, 128).toString("utf16le");
    partitions.push({
      index: i + 1,
      type: guidText(e.subarray(0, 16)),
      uuid: guidText(e.subarray(16, 32)),
      name: raw.includes("\0") ? raw.slice(0, raw.indexOf("\0")) : raw,
      firstLba: Number(e.readBigUInt64LE(32)),
      lastLba: Number(e.readBigUInt64LE(40)),
    });
  }
  return {
    diskGuid: guidText(hdr.subarray(56, 72)),
    firstUsableLba: Number(hdr.readBigUInt64LE(40)),
    lastUsableLba: Number(hdr.readBigUInt64LE(48)),
    partitions,
  };
}

export function findPartition(t: Gpt, name: string): GptPartition | null {
  return t.partitions.find((p) => p.name === name) ?? null;
}
