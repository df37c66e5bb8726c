// The encoded-transform worker (WebRTC Encoded Transform, RTCRtpScriptTransform): every frame a
// protected sender encodes is encrypted here before packetization, every frame a protected receiver
// assembles is decrypted here before its decoder sees it. Built by Vite as its own bundle.
//
// Messages from the page: `{ type: 'init', passphrase, roomId }` once, before any transform.
// Messages to the page: WorkerReport (a receiver starts or stops failing to decrypt, a sender fails).

import { clearBytes, decryptFrame, encryptFrame, FrameError, type FrameKind } from './frame';
import { deriveRoomSecret, Keyring, newKeyId, type SenderKey } from './keys';
import type { TransformOptions, WorkerReport } from './protocol';

/** The parts of an RTCEncodedVideoFrame / RTCEncodedAudioFrame used here. */
type EncodedFrame = {
  data: ArrayBuffer;
  readonly type?: 'key' | 'delta' | 'empty';
  getMetadata(): { mimeType?: string };
};

/** RTCRtpScriptTransformer (the worker side of an RTCRtpScriptTransform). */
type Transformer = {
  readonly options: TransformOptions;
  readonly readable: ReadableStream<EncodedFrame>;
  readonly writable: WritableStream<EncodedFrame>;
};

type WorkerScope = {
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
  addEventListener(type: 'rtctransform', listener: (event: Event & { transformer: Transformer }) => void): void;
  postMessage(message: WorkerReport): void;
};

const scope = self as unknown as WorkerScope;

let resolveSecret!: (secret: Promise<CryptoKey>) => void;
/** The room secret, once the page sent the passphrase (transforms wait for it). */
const secret = new Promise<CryptoKey>((resolve) => {
  resolveSecret = resolve;
});
const keyring = new Keyring(secret);

scope.addEventListener('message', (event) => {
  const data = event.data as { type?: string; passphrase?: unknown; roomId?: unknown };
  if (data?.type !== 'init' || typeof data.passphrase !== 'string' || typeof data.roomId !== 'string') return;
  resolveSecret(deriveRoomSecret(data.passphrase, data.roomId));
});

scope.addEventListener('rtctransform', (event) => {
  const { transformer } = event;
  const options = transformer.options;
  const kind: FrameKind = options.kind === 'audio' ? 'audio' : 'video';
  const transform = options.role === 'encrypt' ? encrypter(options, kind) : decrypter(options);
  transformer.readable
    .pipeThrough(new TransformStream<EncodedFrame, EncodedFrame>({ transform }))
    .pipeTo(transformer.writable)
    .catch(() => {
      // the sender or receiver went away
    });
});

type Transform = (frame: EncodedFrame, controller: TransformStreamDefaultController<EncodedFrame>) => Promise<void>;

/** One sender: its own random KID (so its own key), frames counted from 0. A frame that cannot be
 * encrypted is dropped, never sent as it came. */
function encrypter(options: TransformOptions, kind: FrameKind): Transform {
  const kid = newKeyId();
  const key: Promise<SenderKey> = keyring.get(kid);
  let counter = 0;
  let reported = false;
  return async (frame, controller) => {
    if (frame.data.byteLength === 0) {
      controller.enqueue(frame); // an empty frame carries nothing to hide
      return;
    }
    try {
      const clear = clearBytes(kind, frame.type, frame.getMetadata().mimeType);
      frame.data = await encryptFrame(await key, counter++, frame.data, clear);
      controller.enqueue(frame);
    } catch (error) {
      if (!reported) scope.postMessage({ type: 'failing', transform: options, reason: String(error) });
      reported = true;
    }
  };
}

/** One receiver: the KID in each frame says whose key; a frame that does not decrypt is dropped (a
 * decoder never gets ciphertext), and the page hears when that starts and when it stops. */
function decrypter(options: TransformOptions): Transform {
  let failing = false;
  let decrypted = 0;
  return async (frame, controller) => {
    if (frame.data.byteLength === 0) {
      controller.enqueue(frame);
      return;
    }
    try {
      frame.data = await decryptFrame((kid) => keyring.get(kid), frame.data);
      controller.enqueue(frame);
      decrypted++;
      if (failing || decrypted === 1) scope.postMessage({ type: 'decrypting', transform: options });
      failing = false;
    } catch (error) {
      if (!failing) {
        const reason = error instanceof FrameError ? error.reason : 'error';
        scope.postMessage({ type: 'failing', transform: options, reason });
      }
      failing = true;
    }
  };
}
