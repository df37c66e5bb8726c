import { useEffect, useRef, useState } from 'react';

/** Plays one remote audio track; reports when the browser refuses to start it without a gesture. */
function AudioSink({ track, onBlocked }: { track: MediaStreamTrack; onBlocked: () => void }) {
  const ref = useRef<HTMLAudioElement>(null);
  useEffect(() => {
    const audio = ref.current;
    if (!audio) return;
    audio.srcObject = new MediaStream([track]);
    audio.play().catch((error: Error) => {
      if (error.name === 'NotAllowedError') onBlocked();
    });
  }, [track, onBlocked]);
  return <audio ref={ref} autoPlay />;
}

export function RemoteAudio({ tracks }: { tracks: Array<{ id: string; track: MediaStreamTrack }> }) {
  const [blocked, setBlocked] = useState(false);
  const [generation, setGeneration] = useState(0);
  const onBlocked = useRef(() => setBlocked(true)).current;
  return (
    <div className="remote-audio">
      {tracks.map(({ id, track }) => (
        <AudioSink key={`${id}-${generation}`} track={track} onBlocked={onBlocked} />
      ))}
      {blocked && (
        <button
          type="button"
          className="button primary sound-button"
          onClick={() => {
            setBlocked(false);
            setGeneration((g) => g + 1);
          }}
        >
          Turn on sound
        </button>
      )}
    </div>
  );
}
