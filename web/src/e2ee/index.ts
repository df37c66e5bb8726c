// End-to-end encryption of a call's media (docs/web.md, "End-to-end encryption"): the page's side.
//
// An E2ee owns one worker (./worker.ts) that holds the room secret and runs every transform. A
// sender or receiver is protected by `enableE2ee(senderOrReceiver, e2ee)`, which sets its
// RTCRtpScriptTransform; with @switchyard/client, pass `e2ee.transforms` as RoomClientOptions'
// `transforms`: the package calls them synchronously the moment each RTCRtpSender/RTCRtpReceiver
// exists (mediasoup-client's onRtpSender/onRtpReceiver), before the SDP exchange, so not one frame
// leaves unencrypted. Nothing changes on the wire contract: the server sees RTP as always, with
// encrypted payloads after the codec's first bytes.

import type { MediaTransforms } from '@switchyard/client';

import type { TransformOptions, WorkerReport } from './protocol';

export type { TransformOptions } from './protocol';

/** A change of a transform's state: a receiver fails to decrypt (wrong passphrase, or a sender
 * without encryption) or decrypts (its first frame, or again); a sender fails to encrypt. */
export type E2eeStatus = TransformOptions & { state: 'failing' | 'decrypting'; reason?: string };

/** WebRTC Encoded Transform (RTCRtpScriptTransform: Chromium, tested with 156; Safari; Firefox),
 * workers and WebCrypto are all there. */
export function e2eeSupported(): boolean {
  return (
    typeof RTCRtpScriptTransform === 'function' &&
    typeof Worker === 'function' &&
    typeof globalThis.crypto?.subtle?.encrypt === 'function'
  );
}

/** `?e2ee=<passphrase>` in a room's address (for tests and links shared out of band), or null. */
export function passphraseFromSearch(search: string): string | null {
  const value = new URLSearchParams(search).get('e2ee');
  return value ? value : null;
}

export class E2ee {
  /** The transform worker: every RTCRtpScriptTransform of this call runs in it. */
  readonly worker: Worker;
  private closed = false;

  /**
   * @param passphrase shared out of band by everyone in the call
   * @param roomId salts the key derivation: one passphrase in two rooms gives two keys
   * @param onStatus told when a transform starts failing or (a receiver) decrypting
   */
  constructor(
    passphrase: string,
    roomId: string,
    private readonly onStatus: (status: E2eeStatus) => void = () => undefined,
  ) {
    if (!passphrase) throw new Error('End-to-end encryption needs a passphrase.');
    if (!e2eeSupported()) throw new Error('This browser cannot encrypt media end to end (no WebRTC Encoded Transform).');
    this.worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module', name: 'switchyard-e2ee' });
    this.worker.addEventListener('message', (event: MessageEvent<WorkerReport>) => {
      const report = event.data;
      if (this.closed || !report?.transform) return;
      const state = report.type === 'failing' ? 'failing' : 'decrypting';
      this.onStatus({ ...report.transform, state, ...(report.type === 'failing' ? { reason: report.reason } : {}) });
    });
    this.worker.addEventListener('error', (event) => {
      console.error('switchyard: the end-to-end encryption worker failed', event.message);
    });
    this.worker.postMessage({ type: 'init', passphrase, roomId });
  }

  /** RoomClientOptions' `transforms`: encrypt what every sender sends, decrypt what every receiver
   * gets with the keys of the peer it comes from. */
  readonly transforms: MediaTransforms = {
    sender: (sender, { kind }) => enableE2ee(sender, this, null, kind),
    receiver: (receiver, { peerId, kind }) => enableE2ee(receiver, this, peerId, kind),
  };

  /** Stop the worker: the transforms of this call stop with it (the call is over). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.worker.terminate();
  }
}

/**
 * Encrypt what `target` sends (an RTCRtpSender) or decrypt what it receives (an RTCRtpReceiver, whose
 * media comes from `peerId`). Set it before media flows: a sender's frames until then go out clear.
 */
export function enableE2ee(
  target: RTCRtpSender | RTCRtpReceiver,
  e2ee: E2ee,
  peerId: string | null = null,
  kind: 'audio' | 'video' = target.track?.kind === 'audio' ? 'audio' : 'video',
): void {
  const role = target instanceof RTCRtpSender ? 'encrypt' : 'decrypt';
  const options: TransformOptions = {
    role,
    kind,
    peerId: role === 'decrypt' ? peerId : null,
  };
  target.transform = new RTCRtpScriptTransform(e2ee.worker, options);
}
