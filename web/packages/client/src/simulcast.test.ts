import { describe, expect, it } from 'vitest';

import { CAMERA_ENCODINGS, layerForSize, maxLayerNeeded } from './simulcast';

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
