// The web console's static files: the page, its script and its stylesheet (ui/build-ui.mjs).
// In dist/bollard.js they are embedded, gzipped, by build.mjs (the virtual module
// "bollard-web-assets"); run from source (tests under tsx) they are built at once with esbuild.
// Held gzipped: that is what every browser asks for; a client that does not accept gzip gets
// them inflated on the fly.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { gunzipSync } from "node:zlib";

export interface Asset {
  type: string;
  gz: Buffer;
  raw(): Buffer;
  etag: string;
  /** hashed name: cacheable for ever */
  immutable: boolean;
}

export type AssetTable = Map<string, Asset>;

const asset = (type: string, gz: Buffer, etag: string, immutable: boolean): Asset => ({ type, gz, etag, immutable, raw: () => gunzipSync(gz) });

/** `root`: the repository, when run from source (tests run from there; the bundle never looks). */
export async function loadAssets(root = process.cwd()): Promise<AssetTable> {
  const table: AssetTable = new Map();
  let embedded: typeof import("bollard-web-assets") | null = null;
  try {
    embedded = await import("bollard-web-assets");
  } catch {
    /* run from source */
  }
  if (embedded) {
    for (const [path, a] of Object.entries(embedded.assets)) table.set(path, asset(a.type, Buffer.from(a.gz, "base64"), a.etag, a.immutable));
    return table;
  }
  // names in variables: esbuild leaves these imports alone, so neither lands in the bundle
  const esbuildName = "esbuild";
  const builderPath = pathToFileURL(join(root, "agent/web/ui/build-ui.mjs")).href;
  const [esbuild, { buildUi }] = await Promise.all([import(esbuildName), import(builderPath) as Promise<typeof import("./ui/build-ui.mjs")>]);
  const built = await buildUi(esbuild, root);
  for (const [path, a] of Object.entries(built)) table.set(path, asset(a.type, a.gz, a.etag, a.immutable));
  return table;
}
