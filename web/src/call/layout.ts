// Sizes: how the grid divides the space; the camera codec setting. Which simulcast layer a tile of
// a given size needs is the client package's (layerForSize in @switchyard/client).

import type { CameraCodec } from '@switchyard/client';

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

/** The camera's codec and scalability mode when set (docs/web.md, a developer setting): one SVC
 * encoding instead of simulcast, e.g. AV1 with "L1T3" or "L3T3_KEY" (the client's `camera.codec`). */
export type CameraCodecSetting = CameraCodec;

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
