import { describe, expect, it } from 'vitest';

import { CAMERA_ENCODINGS, cameraCodecSetting, gridShape, layerForSize, maxLayerNeeded } from './layout';

describe('gridShape', () => {
  it('fills a wide screen with one tile', () => {
    expect(gridShape(1, 1600, 900)).toMatchObject({ columns: 1, rows: 1, tileWidth: 1600 });
  });

  it('puts two tiles side by side on a wide screen and stacks them on a phone', () => {
    expect(gridShape(2, 1600, 900).columns).toBe(2);
    expect(gridShape(2, 390, 700).columns).toBe(1);
  });

  it('makes a 2×2 grid for four and a 5×5 grid for 25 on 16:9', () => {
    expect(gridShape(4, 1600, 900)).toMatchObject({ columns: 2, rows: 2 });
    expect(gridShape(25, 1600, 900)).toMatchObject({ columns: 5, rows: 5 });
  });

  it('keeps tiles inside the space and in 16:9', () => {
    for (const count of [1, 2, 3, 5, 7, 12, 25]) {
      const { columns, rows, tileWidth, tileHeight } = gridShape(count, 1280, 640);
      expect(columns * rows).toBeGreaterThanOrEqual(count);
      expect(columns * tileWidth + (columns - 1) * 8).toBeLessThanOrEqual(1280 + 1e-6);
      expect(rows * tileHeight + (rows - 1) * 8).toBeLessThanOrEqual(640 + 1e-6);
      expect(tileWidth / tileHeight).toBeCloseTo(16 / 9);
    }
  });

  it('survives an unmeasured container', () => {
    expect(gridShape(3, 0, 0)).toMatchObject({ tileWidth: 0 });
  });
});

describe('layerForSize', () => {
  it('sends three encodings r0..r2 at 1/4, 1/2 and full size', () => {
    expect(CAMERA_ENCODINGS.map((e) => [e.rid, e.scaleResolutionDownBy])).toEqual([
      ['r0', 4],
      ['r1', 2],
      ['r2', 1],
    ]);
  });

  it('picks the smallest layer that covers the tile', () => {
    expect(layerForSize(100, 720)).toBe(0); // r0 is 180 high
    expect(layerForSize(300, 720)).toBe(1); // r1 is 360 high
    expect(layerForSize(500, 720)).toBe(2);
  });

  it('counts device pixels', () => {
    expect(layerForSize(150, 720, 1)).toBe(0);
    expect(layerForSize(150, 720, 2)).toBe(1);
  });

  it('tolerates a tile slightly larger than a layer', () => {
    expect(layerForSize(190, 720)).toBe(0);
    expect(layerForSize(210, 720)).toBe(1);
  });

  it('uses the top layer for tiles larger than the camera', () => {
    expect(layerForSize(1000, 360)).toBe(2);
  });
});

describe('maxLayerNeeded', () => {
  it('is the highest layer asked for', () => {
    expect(maxLayerNeeded([0])).toBe(0);
    expect(maxLayerNeeded([0, 1, 2])).toBe(2);
    expect(maxLayerNeeded([])).toBe(0);
  });
});

describe('cameraCodecSetting', () => {
  const storage = (items: Record<string, string>) => ({ getItem: (key: string) => items[key] ?? null });

  it('is off unless a codec is named', () => {
    expect(cameraCodecSetting('', storage({}))).toBeNull();
    expect(cameraCodecSetting('?cameraCodec=<script>', storage({}))).toBeNull();
  });

  it('takes the query before storage, and only a scalability mode it knows', () => {
    expect(cameraCodecSetting('?cameraCodec=AV1&cameraScalabilityMode=L3T3_KEY', storage({}))).toEqual({
      mimeType: 'video/av1', scalabilityMode: 'L3T3_KEY',
    });
    const stored = storage({ 'switchyard.cameraCodec': 'VP9', 'switchyard.cameraScalabilityMode': 'L1T3' });
    expect(cameraCodecSetting('', stored)).toEqual({ mimeType: 'video/vp9', scalabilityMode: 'L1T3' });
    expect(cameraCodecSetting('?cameraCodec=AV1&cameraScalabilityMode=L9T9', stored)?.scalabilityMode).toBeUndefined();
    expect(cameraCodecSetting('?cameraScalabilityMode=bogus', stored)?.scalabilityMode).toBeUndefined();
  });
});
