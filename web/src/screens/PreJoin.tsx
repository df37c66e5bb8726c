import { useEffect, useRef, useState, type FormEvent } from 'react';

import type { LocalMedia, SelfState } from '@switchyard/client';

import type { Room } from '../api';
import { e2eeSupported, passphraseFromSearch } from '../e2ee';
import { describeError } from '../errors';
import { linkHandler } from '../router';
import { useReleaseOnUnmount } from '../useRelease';

export type JoinChoice = {
  media: LocalMedia;
  self: SelfState;
  displayName: string;
  /** End-to-end encryption's passphrase (web/src/e2ee), null for a call without it. */
  e2eePassphrase: string | null;
};

export const VIDEO_QUALITIES = {
  low: { label: 'Low (320×180)', width: 320, height: 180, frameRate: 15 },
  standard: { label: 'Standard (640×360)', width: 640, height: 360, frameRate: 24 },
  hd: { label: 'HD (1280×720)', width: 1280, height: 720, frameRate: 30 },
} as const;
type VideoQuality = keyof typeof VIDEO_QUALITIES;

const QUALITY_KEY = 'switchyard.videoQuality';

function storedQuality(): VideoQuality {
  const stored = localStorage.getItem(QUALITY_KEY);
  return stored && stored in VIDEO_QUALITIES ? (stored as VideoQuality) : 'standard';
}

function videoConstraints(deviceId: string, quality: VideoQuality): MediaTrackConstraints {
  const { width, height, frameRate } = VIDEO_QUALITIES[quality];
  return {
    ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
    width: { ideal: width },
    height: { ideal: height },
    frameRate: { ideal: frameRate },
  };
}

/** Camera and microphone, each on its own: one refused or missing device leaves the other working. */
async function openDevices(cameraId: string, micId: string, quality: VideoQuality) {
  const result: LocalMedia & { errors: unknown[] } = { mic: null, camera: null, errors: [] };
  const audio: MediaTrackConstraints = {
    ...(micId ? { deviceId: { exact: micId } } : {}),
    echoCancellation: true,
    noiseSuppression: true,
  };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio, video: videoConstraints(cameraId, quality) });
    result.mic = stream.getAudioTracks()[0] ?? null;
    result.camera = stream.getVideoTracks()[0] ?? null;
    return result;
  } catch {
    // try them one by one below, to tell which one failed
  }
  for (const kind of ['audio', 'video'] as const) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia(
        kind === 'audio' ? { audio } : { video: videoConstraints(cameraId, quality) },
      );
      if (kind === 'audio') result.mic = stream.getAudioTracks()[0] ?? null;
      else result.camera = stream.getVideoTracks()[0] ?? null;
    } catch (error) {
      result.errors.push(error);
    }
  }
  return result;
}

type Props = { room: Room; defaultName: string; onJoin: (choice: JoinChoice) => void };

export function PreJoin({ room, defaultName, onJoin }: Props) {
  const [devices, setDevices] = useState<MediaDeviceInfo[]>([]);
  const [cameraId, setCameraId] = useState('');
  const [micId, setMicId] = useState('');
  const [quality, setQuality] = useState<VideoQuality>(storedQuality);
  const [micOn, setMicOn] = useState(true);
  const [cameraOn, setCameraOn] = useState(true);
  const [displayName, setDisplayName] = useState(defaultName);
  // `?e2ee=<passphrase>` turns end-to-end encryption on with that passphrase (links, tests)
  const [passphrase, setPassphrase] = useState(() => passphraseFromSearch(window.location.search) ?? '');
  const [e2eeOn, setE2eeOn] = useState(() => passphraseFromSearch(window.location.search) !== null);
  const canEncrypt = e2eeSupported();
  const [media, setMedia] = useState<LocalMedia>({ mic: null, camera: null });
  const [opening, setOpening] = useState(true);
  const [mediaError, setMediaError] = useState<string | null>(null);
  const videoRef = useRef<HTMLVideoElement>(null);
  const handedOver = useRef(false);
  const mediaRef = useRef(media);
  mediaRef.current = media;

  useEffect(() => {
    let cancelled = false;
    setOpening(true);
    void openDevices(cameraId, micId, quality).then(async (opened) => {
      if (cancelled) {
        opened.mic?.stop();
        opened.camera?.stop();
        return;
      }
      mediaRef.current.mic?.stop();
      mediaRef.current.camera?.stop();
      setMedia({ mic: opened.mic, camera: opened.camera });
      setMediaError(opened.errors.length ? describeError(opened.errors[0]) : null);
      setOpening(false);
      try {
        setDevices(await navigator.mediaDevices.enumerateDevices());
      } catch {
        setDevices([]);
      }
    });
    return () => {
      cancelled = true;
    };
  }, [cameraId, micId, quality]);

  // Tracks not handed to the call are stopped when the page goes away.
  useReleaseOnUnmount(() => {
    if (handedOver.current) return;
    mediaRef.current.mic?.stop();
    mediaRef.current.camera?.stop();
  });

  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    video.srcObject = media.camera ? new MediaStream([media.camera]) : null;
  }, [media.camera]);

  const join = (event: FormEvent) => {
    event.preventDefault();
    handedOver.current = true;
    localStorage.setItem(QUALITY_KEY, quality);
    onJoin({
      media,
      displayName: displayName.trim() || defaultName,
      e2eePassphrase: e2eeOn && canEncrypt && passphrase ? passphrase : null,
      self: { audioMuted: !micOn || !media.mic, videoMuted: !cameraOn || !media.camera, handRaised: false, screenSharing: false },
    });
  };

  const cameras = devices.filter((d) => d.kind === 'videoinput');
  const mics = devices.filter((d) => d.kind === 'audioinput');
  const activeCamera = media.camera?.getSettings().deviceId ?? cameraId;
  const activeMic = media.mic?.getSettings().deviceId ?? micId;

  return (
    <main className="prejoin-page">
      <p>
        <a href="/rooms" onClick={linkHandler('/rooms')}>
          ← All rooms
        </a>
      </p>
      <h1>{room.name}</h1>
      <p className="muted-text">
        {room.participantCount === 0
          ? 'Nobody is here yet.'
          : `${room.participantCount} ${room.participantCount === 1 ? 'person is' : 'people are'} in the room.`}
      </p>
      <div className="prejoin">
        <div className="preview">
          <video ref={videoRef} autoPlay playsInline muted className="mirrored" hidden={!media.camera || !cameraOn} />
          {(!media.camera || !cameraOn) && (
            <div className="preview-off">{opening ? 'Starting camera…' : media.camera ? 'Camera off' : 'No camera'}</div>
          )}
        </div>
        <form className="card form" onSubmit={join} aria-label="Join settings">
          {mediaError && (
            <p className="form-error" role="alert">
              {mediaError} You can still join.
            </p>
          )}
          <label>
            Your name in this room
            <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} maxLength={64} required />
          </label>
          <label>
            Camera
            <select value={activeCamera} onChange={(e) => setCameraId(e.target.value)} disabled={cameras.length === 0}>
              {cameras.length === 0 && <option value="">No camera found</option>}
              {cameras.map((d, i) => (
                <option key={d.deviceId || i} value={d.deviceId}>
                  {d.label || `Camera ${i + 1}`}
                </option>
              ))}
            </select>
          </label>
          <label>
            Microphone
            <select value={activeMic} onChange={(e) => setMicId(e.target.value)} disabled={mics.length === 0}>
              {mics.length === 0 && <option value="">No microphone found</option>}
              {mics.map((d, i) => (
                <option key={d.deviceId || i} value={d.deviceId}>
                  {d.label || `Microphone ${i + 1}`}
                </option>
              ))}
            </select>
          </label>
          <label>
            Video quality
            <select value={quality} onChange={(e) => setQuality(e.target.value as VideoQuality)}>
              {Object.entries(VIDEO_QUALITIES).map(([key, q]) => (
                <option key={key} value={key}>
                  {q.label}
                </option>
              ))}
            </select>
          </label>
          <label className="check">
            <input type="checkbox" checked={micOn} onChange={(e) => setMicOn(e.target.checked)} disabled={!media.mic} />
            Microphone on
          </label>
          <label className="check">
            <input type="checkbox" checked={cameraOn} onChange={(e) => setCameraOn(e.target.checked)} disabled={!media.camera} />
            Camera on
          </label>
          <label className="check">
            <input type="checkbox" checked={e2eeOn} onChange={(e) => setE2eeOn(e.target.checked)} disabled={!canEncrypt} />
            End-to-end encryption
          </label>
          {!canEncrypt && <p className="muted-text">This browser cannot encrypt media end to end.</p>}
          {e2eeOn && canEncrypt && (
            <label>
              Encryption passphrase
              <input
                type="password"
                value={passphrase}
                onChange={(e) => setPassphrase(e.target.value)}
                autoComplete="off"
                aria-describedby="e2ee-hint"
                required
              />
              <span id="e2ee-hint" className="muted-text field-hint">
                Everyone in the call needs the same one: share it outside Switchyard. The server forwards your video
                and audio without being able to see or hear them.
              </span>
            </label>
          )}
          <button type="submit" className="button primary big" disabled={opening}>
            Join room
          </button>
        </form>
      </div>
    </main>
  );
}
