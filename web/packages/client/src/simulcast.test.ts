import { describe, expect, it } from 'vitest';

import type { RtpCodecCapability } from 'mediasoup-client/types';

import { CAMERA_ENCODINGS, cameraProducerOptions, layerForSize, maxLayerNeeded } from './simulcast';

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

describe('cameraProducerOptions', () => {
  const track = { kind: 'video', getSettings: () => ({ height: 360 }) } as unknown as MediaStreamTrack;
  const codecs = [
    { kind: 'video', mimeType: 'video/VP8', clockRate: 90000 },
    { kind: 'video', mimeType: 'video/AV1', clockRate: 90000 },
  ] as RtpCodecCapability[];

  it('sends three simulcast encodings by default, with the capture height for viewers', () => {
    const options = cameraProducerOptions(track, codecs);
    expect(options.encodings?.map((e) => e.rid)).toEqual(['r0', 'r1', 'r2']);
    expect(options.codec).toBeUndefined();
    expect(options.appData).toEqual({ source: 'camera', height: 360 });
    expect(options.stopTracks).toBe(false);
  });

  it('sends one SVC encoding of a codec the device shares', () => {
    const options = cameraProducerOptions(track, codecs, { mimeType: 'video/av1', scalabilityMode: 'L1T3' });
    expect(options.codec?.mimeType).toBe('video/AV1');
    expect(options.encodings).toEqual([{ scalabilityMode: 'L1T3', maxBitrate: 1_500_000 }]);
  });

  it('falls back to simulcast for a codec the device lacks', () => {
    const options = cameraProducerOptions(track, codecs, { mimeType: 'video/h265', scalabilityMode: undefined });
    expect(options.codec).toBeUndefined();
    expect(options.encodings).toHaveLength(3);
  });

  it('gives each call its own encodings (mediasoup-client may change them)', () => {
    const first = cameraProducerOptions(track, codecs).encodings!;
    first[0].maxBitrate = 1;
    expect(cameraProducerOptions(track, codecs).encodings![0].maxBitrate).toBe(150_000);
  });
});
