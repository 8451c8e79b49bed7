export interface BuiltAsset { type: string; body: Buffer; gz: Buffer; etag: string; immutable: boolean }
export function buildUi(esbuild: unknown, root: string): Promise<Record<string, BuiltAsset>>;
