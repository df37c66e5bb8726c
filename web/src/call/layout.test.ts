import { describe, expect, it } from 'vitest';

import { cameraCodecSetting, gridShape } from './layout';

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
