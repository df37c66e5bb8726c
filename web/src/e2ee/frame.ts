// The encrypted frame format: SFrame's cryptography (RFC 9605) with its header moved to the end of
// the frame, so that the first bytes of the codec's own payload stay readable:
//
//   frame   = codec header (N bytes, clear) || AES-GCM(rest of the frame) || tag (16) || trailer
//   trailer = KID (8) || CTR (0-8) || N (1) || config (1)
//
// `config` is RFC 9605 §4.3's config byte (|X|K|K|K|Y|C|C|C|): X=1 and K=7 say the KID is 8 bytes
// long; Y=0 means CTR is C itself (0-7) and takes no bytes, Y=1 that it is C+1 big-endian bytes.
// The nonce is the sender's salt XOR CTR (§4.4.3); the AAD is the clear header and the trailer, so
// a server that changes either makes the frame fail authentication.
//
// Why the header stays clear: the SFU never decrypts, but it reads a VP8 frame's first byte (the
// key-frame bit, RFC 7741 §4.3) to switch simulcast layers on a key frame, and Chromium's
// depacketizer reads a key frame's size (RFC 6386 §9.1: 3-byte frame tag, then start code, width and
// height, 10 bytes in all) before the receive transform runs. The WebRTC insertable-streams samples
// keep the same 10 and 3 bytes, and Opus's TOC byte (RFC 6716 §3.1).

import { KID_BYTES, SALT_BYTES, type SenderKey } from './keys';

export const TAG_BYTES = 16;
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
const CTR_BYTES = 8;

export type FrameKind = 'audio' | 'video';

/** Why a frame could not be decrypted: too short, not in this format, or the wrong key / tampered. */
export class FrameError extends Error {
  constructor(
    readonly reason: 'truncated' | 'format' | 'auth',
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/**
 * How many leading bytes of a frame stay in the clear: VP8's 10 (key frame) or 3 (delta frame),
 * Opus's 1. Other video codecs are encrypted whole (VP9 and AV1 layer information travels in the
 * RTP payload descriptor and header extensions, outside the frame).
 */
export function clearBytes(kind: FrameKind, frameType?: string, mimeType?: string): number {
  const codec = mimeType?.toLowerCase();
  if (kind === 'audio') return !codec || codec === 'audio/opus' ? 1 : 0;
  if (codec && codec !== 'video/vp8') return 0;
  return frameType === 'key' ? 10 : 3;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** CTR as 8 big-endian bytes. */
function counterBytes(counter: number): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(counter) || counter < 0) throw new RangeError(`frame counter out of range: ${counter}`);
  const out = new Uint8Array(CTR_BYTES);
  let rest = counter;
  for (let i = CTR_BYTES - 1; i >= 0 && rest > 0; i--) {
    out[i] = rest % 256;
    rest = Math.floor(rest / 256);
  }
  return out;
}

/** RFC 9605 §4.4.3: the nonce is the salt XOR CTR, CTR right-aligned in the nonce's 12 bytes. */
function nonce(salt: Uint8Array, ctr: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(salt);
  for (let i = 0; i < CTR_BYTES; i++) out[SALT_BYTES - CTR_BYTES + i] ^= ctr[i];
  return out;
}

/** The trailer of a frame with counter `counter` and `clear` clear bytes. */
export function encodeTrailer(kid: Uint8Array, counter: number, clear: number): Uint8Array<ArrayBuffer> {
  if (kid.length !== KID_BYTES) throw new Error(`a key id is ${KID_BYTES} bytes`);
  if (clear < 0 || clear > 255) throw new RangeError(`clear header length out of range: ${clear}`);
  const ctr = counterBytes(counter);
  const config = 0x80 | ((KID_BYTES - 1) << 4);
  if (counter < 8) return concat(kid, Uint8Array.of(clear, config | counter));
  const used = ctr.findIndex((b) => b !== 0);
  const bytes = ctr.subarray(used);
  return concat(kid, bytes, Uint8Array.of(clear, config | 0x08 | (bytes.length - 1)));
}

export type Trailer = {
  kid: Uint8Array<ArrayBuffer>;
  /** CTR, 8 bytes big-endian. */
  ctr: Uint8Array<ArrayBuffer>;
  /** Length of the clear codec header. */
  clear: number;
  /** Where the trailer starts (the ciphertext and tag end). */
  start: number;
};

/** Read the trailer off the end of a frame; anything that is not this format is a FrameError. */
export function readTrailer(frame: Uint8Array): Trailer {
  if (frame.length < 2 + KID_BYTES + TAG_BYTES) throw new FrameError('truncated', `a ${frame.length}-byte frame is too short`);
  const config = frame[frame.length - 1];
  if ((config & 0x80) === 0 || ((config >> 4) & 7) !== KID_BYTES - 1) {
    throw new FrameError('format', `config byte 0x${config.toString(16)} is not an end-to-end encrypted frame's`);
  }
  const long = (config & 0x08) !== 0;
  const ctrLength = long ? (config & 7) + 1 : 0;
  const clear = frame[frame.length - 2];
  const start = frame.length - 2 - ctrLength - KID_BYTES;
  if (start - TAG_BYTES < clear) throw new FrameError('truncated', 'the frame is shorter than its header says');
  const kid = frame.slice(start, start + KID_BYTES);
  const ctr = new Uint8Array(CTR_BYTES);
  if (long) ctr.set(frame.subarray(start + KID_BYTES, start + KID_BYTES + ctrLength), CTR_BYTES - ctrLength);
  else ctr[CTR_BYTES - 1] = config & 7;
  return { kid, ctr, clear, start };
}

/** Encrypt one frame: its first `clear` bytes stay as they are, the rest is sealed (AES-GCM). */
export async function encryptFrame(key: SenderKey, counter: number, data: ArrayBuffer, clear: number): Promise<ArrayBuffer> {
  const frame = new Uint8Array(data);
  const header = frame.subarray(0, Math.min(clear, frame.length));
  const trailer = encodeTrailer(key.kid, counter, header.length);
  const sealed = await crypto.subtle.encrypt(
    { name: 'AES-GCM', iv: nonce(key.salt, counterBytes(counter)), additionalData: concat(header, trailer), tagLength: TAG_BYTES * 8 },
    key.key,
    frame.subarray(header.length),
  );
  return concat(header, new Uint8Array(sealed), trailer).buffer;
}

/**
 * Decrypt one frame with the key of the KID in its trailer (`keyFor` derives or looks it up). A frame
 * in another format, under another passphrase or changed on the way throws a FrameError.
 */
export async function decryptFrame(keyFor: (kid: Uint8Array<ArrayBuffer>) => Promise<SenderKey>, data: ArrayBuffer): Promise<ArrayBuffer> {
  const frame = new Uint8Array(data);
  const trailer = readTrailer(frame);
  const key = await keyFor(trailer.kid);
  const header = frame.subarray(0, trailer.clear);
  let plain: ArrayBuffer;
  try {
    plain = await crypto.subtle.decrypt(
      {
        name: 'AES-GCM',
        iv: nonce(key.salt, trailer.ctr),
        additionalData: concat(header, frame.subarray(trailer.start)),
        tagLength: TAG_BYTES * 8,
      },
      key.key,
      frame.subarray(trailer.clear, trailer.start),
    );
  } catch {
    throw new FrameError('auth', 'the frame does not authenticate: another passphrase, or it was changed on the way');
  }
  return concat(header, new Uint8Array(plain)).buffer;
}
