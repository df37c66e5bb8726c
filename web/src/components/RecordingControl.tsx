import { useState } from 'react';

import { api, ApiError, type Recording } from '../api';

type Props = {
  token: string;
  roomId: string;
  /** The room's running room-wide or producer recording, if any. */
  recording: Recording | null;
  isOwner: boolean;
  onChange: (recording: Recording | null) => void;
  onError: (message: string) => void;
};

/** A red dot while the room records (everyone sees it); a start/stop button for the room's owner. */
export function RecordingControl({ token, roomId, recording, isOwner, onChange, onError }: Props) {
  const [busy, setBusy] = useState(false);
  const recordingNow = recording?.state === 'recording';

  async function toggle() {
    setBusy(true);
    try {
      if (recordingNow && recording) {
        await api.stopRecording(token, roomId, recording.id);
        onChange(null);
      } else {
        onChange(await api.startRecording(token, roomId));
      }
    } catch (error) {
      const message =
        error instanceof ApiError && error.code === 'insufficient_storage'
          ? 'The server is short of disk space: the recording cannot start.'
          : error instanceof Error
            ? error.message
            : 'The recording could not be changed.';
      onError(message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <>
      {recordingNow && (
        <span className="recording-dot" role="status" aria-label="This room is being recorded">
          <span className="recording-dot-mark" aria-hidden="true" />
          REC
        </span>
      )}
      {isOwner && (
        <button type="button" className="button ghost recording-button" disabled={busy} onClick={() => void toggle()}>
          {recordingNow ? 'Stop recording' : 'Record'}
        </button>
      )}
    </>
  );
}

/** The running recording after a `recording-changed` event: the one it names if it runs, else none
 * (a stopped recording that is not the one shown leaves the shown one as it is). */
export function afterRecordingChanged(current: Recording | null, data: unknown): Recording | null {
  const changed = (data as { recording?: Recording } | null)?.recording;
  if (!changed) return current;
  if (changed.state === 'recording') return changed;
  return current && current.id !== changed.id ? current : null;
}
