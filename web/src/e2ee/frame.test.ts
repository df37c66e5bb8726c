import { describe, expect, it } from 'vitest';

import { clearBytes, decryptFrame, encodeTrailer, encryptFrame, FrameError, readTrailer, TAG_BYTES } from './frame';
import { deriveRoomSecret, deriveSenderKey, hex, Keyring, KID_BYTES, newKeyId, type SenderKey } from './keys';

// a few PBKDF2 rounds: the tests are about the framing, not the work factor
const ROUNDS = 1000;

async function senderKey(passphrase: string, roomId = 'room-1', kid = newKeyId()): Promise<SenderKey> {
  return deriveSenderKey(await deriveRoomSecret(passphrase, roomId, ROUNDS), kid);
}

function keyringFor(passphrase: string, roomId = 'room-1'): Keyring {
  return new Keyring(deriveRoomSecret(passphrase, roomId, ROUNDS));
}

/** A VP8 key frame's first 10 bytes (frame tag, start code, 320x180), then "picture" bytes. */
function vp8KeyFrame(size = 600): ArrayBuffer {
  const frame = new Uint8Array(size);
  frame.set([0x50, 0x2c, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xb4, 0x00]);
  for (let i = 10; i < size; i++) frame[i] = (i * 7) & 0xff;
  return frame.buffer;
}

function bytes(buffer: ArrayBuffer): number[] {
  return Array.from(new Uint8Array(buffer));
}

async function failure(promise: Promise<unknown>): Promise<FrameError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(FrameError);
    return error as FrameError;
  }
  throw new Error('expected a FrameError');
}

describe('clear header', () => {
  it('keeps VP8 key frames 10 bytes, delta frames 3, Opus 1 and other video codecs none', () => {
    expect(clearBytes('video', 'key')).toBe(10);
    expect(clearBytes('video', 'delta', 'video/VP8')).toBe(3);
    expect(clearBytes('audio', undefined, 'audio/opus')).toBe(1);
    expect(clearBytes('audio')).toBe(1);
    expect(clearBytes('video', 'key', 'video/VP9')).toBe(0);
    expect(clearBytes('video', 'key', 'video/AV1')).toBe(0);
  });
});

describe('encrypted frames', () => {
  it('round-trip, leaving the codec header readable and nothing else', async () => {
    const key = await senderKey('correct horse');
    const plain = vp8KeyFrame();
    const sealed = await encryptFrame(key, 0, plain, 10);
    // header in the clear: the server still reads the key-frame bit (P = 0) and the size
    expect(bytes(sealed).slice(0, 10)).toEqual(bytes(plain).slice(0, 10));
    expect(new Uint8Array(sealed)[0] & 0x01).toBe(0);
    // KID (8) + counter 0 (no bytes) + clear length + config byte, and the 16-byte tag
    expect(sealed.byteLength).toBe(plain.byteLength + TAG_BYTES + KID_BYTES + 2);
    // the picture is not: no run of 16 plaintext bytes survives
    const text = hex(new Uint8Array(sealed));
    for (let at = 10; at + 16 <= plain.byteLength; at += 16) {
      expect(text.includes(hex(new Uint8Array(plain, at, 16)))).toBe(false);
    }
    const receiver = keyringFor('correct horse');
    const opened = await decryptFrame((kid) => receiver.get(kid), sealed);
    expect(bytes(opened)).toEqual(bytes(plain));
  });

  it('decrypt with the keyring of another browser that knows the passphrase', async () => {
    const sender = await senderKey('correct horse');
    const receiver = keyringFor('correct horse');
    const delta = new Uint8Array([0x31, 0x02, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    const opus = new Uint8Array([0xfc, 9, 8, 7, 6, 5, 4, 3]);
    for (const [counter, frame, clear] of [
      [1, delta, 3],
      [7, opus, 1],
      [8, delta, 3],
      [255, opus, 1],
      [256, delta, 3],
      [2 ** 40 + 3, delta, 3],
      [Number.MAX_SAFE_INTEGER, opus, 1],
    ] as const) {
      const sealed = await encryptFrame(sender, counter, frame.slice().buffer, clear);
      expect(bytes(sealed).slice(0, clear)).toEqual(Array.from(frame.slice(0, clear)));
      const opened = await decryptFrame((kid) => receiver.get(kid), sealed);
      expect(bytes(opened)).toEqual(Array.from(frame));
    }
  });

  it('an empty picture and a frame shorter than its clear header still round-trip', async () => {
    const key = await senderKey('pw');
    const keyring = keyringFor('pw');
    for (const frame of [new Uint8Array([0x10, 0x20, 0x30]), new Uint8Array([0x10])]) {
      const sealed = await encryptFrame(key, 3, frame.slice().buffer, 10);
      expect(readTrailer(new Uint8Array(sealed)).clear).toBe(frame.length);
      expect(bytes(await decryptFrame((kid) => keyring.get(kid), sealed))).toEqual(Array.from(frame));
    }
  });

  it('fail with another passphrase, and with the same passphrase in another room', async () => {
    const sealed = await encryptFrame(await senderKey('correct horse'), 42, vp8KeyFrame(), 10);
    const wrong = keyringFor('correct horsE');
    expect((await failure(decryptFrame((kid) => wrong.get(kid), sealed))).reason).toBe('auth');
    const otherRoom = keyringFor('correct horse', 'room-2');
    expect((await failure(decryptFrame((kid) => otherRoom.get(kid), sealed))).reason).toBe('auth');
  });

  it('fail when the server changes the clear header, the payload or the counter', async () => {
    const keyring = keyringFor('pw');
    const sealed = new Uint8Array(await encryptFrame(await senderKey('pw'), 9, vp8KeyFrame(), 10));
    const tamper = async (at: number) => {
      const copy = sealed.slice();
      copy[at] ^= 0x01;
      return (await failure(decryptFrame((kid) => keyring.get(kid), copy.buffer))).reason;
    };
    expect(await tamper(0)).toBe('auth'); // a delta frame's P bit forged on a key frame
    expect(await tamper(20)).toBe('auth'); // ciphertext
    expect(await tamper(sealed.length - 3)).toBe('auth'); // counter byte (9 needs one)
    expect(await tamper(sealed.length - 5)).toBe('auth'); // KID: another sender's key
  });

  it('refuse what is not an encrypted frame', async () => {
    const keyring = keyringFor('pw');
    const open = (frame: Uint8Array) => failure(decryptFrame((kid) => keyring.get(kid), frame.slice().buffer));
    expect((await open(new Uint8Array(0))).reason).toBe('truncated');
    // a plain VP8 frame from a sender without encryption: its last byte is no config byte of ours
    const plain = new Uint8Array(vp8KeyFrame());
    plain[plain.length - 1] = 0x12;
    expect((await open(plain)).reason).toBe('format');
    // a trailer that claims more clear bytes than the frame has
    const trailer = encodeTrailer(new Uint8Array(KID_BYTES), 0, 200);
    const short = new Uint8Array(40 + trailer.length);
    short.set(trailer, 40);
    expect((await open(short)).reason).toBe('truncated');
  });

  it('differ between two senders of the same passphrase (own key per KID, no shared nonces)', async () => {
    const secret = await deriveRoomSecret('pw', 'room-1', ROUNDS);
    const a = await deriveSenderKey(secret, newKeyId());
    const b = await deriveSenderKey(secret, newKeyId());
    const frame = vp8KeyFrame(64);
    const sealedA = new Uint8Array(await encryptFrame(a, 0, frame, 10));
    const sealedB = new Uint8Array(await encryptFrame(b, 0, frame, 10));
    expect(Array.from(sealedA.slice(10, 10 + 54))).not.toEqual(Array.from(sealedB.slice(10, 10 + 54)));
    expect(readTrailer(sealedA).kid).toEqual(a.kid);
  });
});

describe('keys', () => {
  it('refuse an empty passphrase and keys ids of the wrong size', async () => {
    await expect(deriveRoomSecret('', 'room-1', ROUNDS)).rejects.toThrow(/empty passphrase/);
    const secret = await deriveRoomSecret('pw', 'room-1', ROUNDS);
    await expect(deriveSenderKey(secret, new Uint8Array(4))).rejects.toThrow(/8 bytes/);
  });

  it('keep at most `limit` sender keys, dropping the least recently used', async () => {
    const keyring = new Keyring(deriveRoomSecret('pw', 'room-1', ROUNDS), 3);
    const kids = [1, 2, 3, 4].map((n) => new Uint8Array(KID_BYTES).fill(n));
    const first = keyring.get(kids[0]);
    expect(keyring.get(kids[0].slice())).toBe(first);
    keyring.get(kids[1]);
    keyring.get(kids[2]);
    keyring.get(kids[0]); // used again: kids[1] is now the oldest
    keyring.get(kids[3]);
    expect(keyring.size).toBe(3);
    expect(keyring.get(kids[0])).toBe(first);
    await first;
  });
});
