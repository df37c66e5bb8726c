// What the page and the transform worker tell each other (types only, shared by both bundles).

/** The options of one RTCRtpScriptTransform, as the worker's transformer sees them. */
export type TransformOptions = {
  role: 'encrypt' | 'decrypt';
  kind: 'audio' | 'video';
  /** Whose media a receiver gets (null for the page's own senders), echoed in reports. */
  peerId: string | null;
};

/** From the worker: a transform started failing (its frames are dropped), or a receiver decrypts
 * (its first frame, or again after failing). */
export type WorkerReport =
  | { type: 'failing'; transform: TransformOptions; reason: string }
  | { type: 'decrypting'; transform: TransformOptions };
