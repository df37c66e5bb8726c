// Keys for end-to-end encryption: a room secret from the passphrase, and from it one AES-GCM key
// and nonce salt per sender key id (KID), the key schedule of SFrame (RFC 9605 §4.4.2).
//
// Why per-sender keys when everyone knows the passphrase: AES-GCM must never see the same nonce
// twice under one key. Every sender transform picks a random 64-bit KID and counts its frames from
// zero; with the key derived from the KID, two senders (or a sender's audio and video, or the same
// person after a reconnect) never share a key, so no coordination of counters is needed.

/** PBKDF2-SHA-256 rounds (OWASP's 2023 figure): a guessed passphrase costs this much per guess. */
export const PBKDF2_ITERATIONS = 600_000;
/** RFC 9605 §4.5: AES_128_GCM_SHA256_128 (16-byte key, 12-byte nonce, 16-byte tag). */
export const CIPHER_SUITE = 0x0004;
export const KID_BYTES = 8;
export const KEY_BYTES = 16;
export const SALT_BYTES = 12;
/** Most sender keys a receiver keeps: KIDs come off the wire, so the cache must not grow without end. */
export const KEYRING_LIMIT = 64;

const encoder = new TextEncoder();

/** A sender's key: what encrypts its frames and what its receivers derive from its KID. */
export type SenderKey = {
  kid: Uint8Array<ArrayBuffer>;
  key: CryptoKey;
  salt: Uint8Array<ArrayBuffer>;
};

/**
 * The room's base key (RFC 9605's `base_key`): PBKDF2 of the passphrase, salted with the room id so
 * that one passphrase used in two rooms gives two unrelated keys. Returned as an HKDF key that
 * cannot be exported.
 */
export async function deriveRoomSecret(
  passphrase: string,
  roomId: string,
  iterations = PBKDF2_ITERATIONS,
): Promise<CryptoKey> {
  if (!passphrase) throw new Error('an empty passphrase encrypts nothing');
  const material = await crypto.subtle.importKey('raw', encoder.encode(passphrase), 'PBKDF2', false, ['deriveBits']);
  const bits = await crypto.subtle.deriveBits(
    { name: 'PBKDF2', hash: 'SHA-256', salt: encoder.encode(`switchyard e2ee v1 room ${roomId}`), iterations },
    material,
    256,
  );
  return crypto.subtle.importKey('raw', bits, 'HKDF', false, ['deriveBits']);
}

/** `label || KID (8 bytes, big-endian) || cipher suite (2 bytes)`: RFC 9605 §4.4.2's HKDF info. */
function info(label: string, kid: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  const prefix = encoder.encode(label);
  const out = new Uint8Array(prefix.length + KID_BYTES + 2);
  out.set(prefix);
  out.set(kid, prefix.length);
  out[out.length - 2] = CIPHER_SUITE >> 8;
  out[out.length - 1] = CIPHER_SUITE & 0xff;
  return out;
}

/** RFC 9605 §4.4.2: `sframe_key` and `sframe_salt` = HKDF(salt "", base_key, label || KID || suite). */
export async function deriveSenderKey(secret: CryptoKey, kid: Uint8Array<ArrayBuffer>): Promise<SenderKey> {
  if (kid.length !== KID_BYTES) throw new Error(`a key id is ${KID_BYTES} bytes`);
  const hkdf = (label: string, bytes: number) =>
    crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: info(label, kid) }, secret, bytes * 8);
  const [raw, salt] = await Promise.all([hkdf('SFrame 1.0 Secret key ', KEY_BYTES), hkdf('SFrame 1.0 Secret salt ', SALT_BYTES)]);
  const key = await crypto.subtle.importKey('raw', raw, 'AES-GCM', false, ['encrypt', 'decrypt']);
  return { kid: kid.slice(), key, salt: new Uint8Array(salt) };
}

/** A fresh random KID for a new sender transform. */
export function newKeyId(): Uint8Array<ArrayBuffer> {
  return crypto.getRandomValues(new Uint8Array(KID_BYTES));
}

export function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * The sender keys a receiver has derived, by KID: at most `limit`, the least recently used going
 * first, because KIDs are read off frames the network (and the server) hands us.
 */
export class Keyring {
  private readonly keys = new Map<string, Promise<SenderKey>>();

  constructor(
    private readonly secret: Promise<CryptoKey>,
    private readonly limit = KEYRING_LIMIT,
  ) {}

  get(kid: Uint8Array<ArrayBuffer>): Promise<SenderKey> {
    const id = hex(kid);
    let key = this.keys.get(id);
    if (key) {
      this.keys.delete(id);
    } else {
      const copy = kid.slice();
      key = this.secret.then((secret) => deriveSenderKey(secret, copy));
    }
    this.keys.set(id, key);
    while (this.keys.size > this.limit) this.keys.delete(this.keys.keys().next().value as string);
    return key;
  }

  get size(): number {
    return this.keys.size;
  }
}
