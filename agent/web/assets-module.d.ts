// The virtual module build.mjs makes: the front end, gzipped and base64'd, one entry a path.
declare module "bollard-web-assets" {
  export const assets: Record<string, { type: string; gz: string; etag: string; immutable: boolean }>;
}
