// Sizes: how the grid divides the space, and which simulcast layer a tile of a given size needs.

export type GridShape = { columns: number; rows: number; tileWidth: number; tileHeight: number };

/** The column count that makes `count` tiles of `aspect` (width/height) largest in width × height. */
export function gridShape(count: number, width: number, height: number, aspect = 16 / 9, gap = 8): GridShape {
  const n = Math.max(1, count);
  let best: GridShape = { columns: 1, rows: n, tileWidth: 0, tileHeight: 0 };
  for (let columns = 1; columns <= n; columns++) {
    const rows = Math.ceil(n / columns);
    const cellWidth = (width - gap * (columns - 1)) / columns;
    const cellHeight = (height - gap * (rows - 1)) / rows;
    const tileWidth = Math.max(0, Math.min(cellWidth, cellHeight * aspect));
    if (tileWidth > best.tileWidth) best = { columns, rows, tileWidth, tileHeight: tileWidth / aspect };
  }
  return best;
}

/** Spatial layers the camera is sent in: r0, r1, r2 at 1/4, 1/2 and full resolution. */
export const CAMERA_ENCODINGS = [
  { rid: 'r0', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { rid: 'r1', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'r2', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/**
 * The lowest spatial layer whose height covers a tile `displayHeight` CSS pixels high (times the
 * device pixel ratio), for a camera captured `sourceHeight` pixels high; the top layer otherwise.
 */
export function layerForSize(displayHeight: number, sourceHeight: number, pixelRatio = 1): number {
  const needed = displayHeight * pixelRatio;
  const top = CAMERA_ENCODINGS.length - 1;
  for (let layer = 0; layer < top; layer++) {
    const layerHeight = sourceHeight / CAMERA_ENCODINGS[layer].scaleResolutionDownBy;
    // a little upscaling is not visible; a layer 10% short of the tile still does
    if (layerHeight >= needed * 0.9) return layer;
  }
  return top;
}

/** The highest layer a `producer-layers-needed` list asks for (lower ones stay on, §4). */
export function maxLayerNeeded(spatialLayers: number[]): number {
  return spatialLayers.length ? Math.max(...spatialLayers) : 0;
}

/** The camera's codec and scalability mode when set (docs/web.md, a developer setting): one SVC
 * encoding instead of simulcast, e.g. AV1 with "L1T3" or "L3T3_KEY". */
export type CameraCodecSetting = { mimeType: string; scalabilityMode: string | undefined };

export const CAMERA_CODEC_KEY = 'switchyard.cameraCodec';
export const CAMERA_SCALABILITY_KEY = 'switchyard.cameraScalabilityMode';

/** Read the setting from a URL query (`?cameraCodec=AV1&cameraScalabilityMode=L1T3`) or, failing
 * that, from storage; null when no codec is named (the default: VP8 simulcast). */
export function cameraCodecSetting(search: string, storage: Pick<Storage, 'getItem'>): CameraCodecSetting | null {
  const query = new URLSearchParams(search);
  const codec = query.get('cameraCodec') ?? storage.getItem(CAMERA_CODEC_KEY);
  if (!codec || !/^[A-Za-z0-9-]{1,16}$/.test(codec)) return null;
  const mode = query.get('cameraScalabilityMode') ?? storage.getItem(CAMERA_SCALABILITY_KEY);
  return {
    mimeType: `video/${codec}`.toLowerCase(),
    scalabilityMode: mode && /^[LS][1-3]T[1-3](_KEY)?$/.test(mode) ? mode : undefined,
  };
}
