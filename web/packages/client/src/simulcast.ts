// Simulcast: the camera's spatial layers, and which of them a viewer needs (PROTOCOL.md §4).

import type { AppData, ProducerOptions, RtpCodecCapability, RtpEncodingParameters } from 'mediasoup-client/types';

/** Spatial layers the camera is sent in: r0, r1, r2 at 1/4, 1/2 and full resolution. */
export const CAMERA_ENCODINGS: ReadonlyArray<{ rid: string; scaleResolutionDownBy: number; maxBitrate: number }> = [
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

/** A camera codec other than the default VP8 simulcast: one encoding of `mimeType` (e.g. `video/av1`)
 * with the W3C webrtc-svc `scalabilityMode` (e.g. `L1T3`, `L3T3_KEY`), thinned per viewer by the server. */
export type CameraCodec = { mimeType: string; scalabilityMode: string | undefined };

/**
 * mediasoup-client's produce() options for a camera track: one SVC encoding of `codec` when it is
 * set and among `codecs` (the device's, i.e. what the browser and the router share), else the three
 * VP8 simulcast encodings of CAMERA_ENCODINGS. `appData` carries the source and the capture height
 * (viewers pick layers from it).
 */
export function cameraProducerOptions(
  track: MediaStreamTrack,
  codecs: readonly RtpCodecCapability[],
  codec?: CameraCodec | null,
): ProducerOptions {
  const shared = codec ? codecs.find((c) => c.mimeType.toLowerCase() === codec.mimeType) : undefined;
  const encodings: RtpEncodingParameters[] = shared
    ? [{ scalabilityMode: codec?.scalabilityMode, maxBitrate: 1_500_000 }]
    : CAMERA_ENCODINGS.map((e) => ({ ...e }));
  return {
    track,
    ...(shared ? { codec: shared } : {}),
    encodings,
    codecOptions: { videoGoogleStartBitrate: 1000 },
    stopTracks: false,
    appData: { source: 'camera', height: track.getSettings().height ?? null } as AppData,
  };
}
