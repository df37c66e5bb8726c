import { describe, expect, it } from 'vitest';

import type { Recording } from '../api';
import { afterRecordingChanged } from './RecordingControl';

const base: Recording = {
  id: 'r1',
  roomId: 'room',
  producerId: null,
  state: 'recording',
  stopReason: null,
  startedAt: '2026-01-01T00:00:00.000Z',
  stoppedAt: null,
  sizeBytes: 0,
  durationMs: 0,
  files: [],
};

describe('afterRecordingChanged', () => {
  it('shows a recording that starts and hides it when it stops', () => {
    const shown = afterRecordingChanged(null, { roomId: 'room', recording: base });
    expect(shown?.id).toBe('r1');
    expect(afterRecordingChanged(shown, { roomId: 'room', recording: { ...base, state: 'stopped' } })).toBeNull();
  });

  it('keeps the running one when another recording stops', () => {
    const other = { ...base, id: 'r2', state: 'stopped' as const, stopReason: 'size_limit' };
    expect(afterRecordingChanged(base, { roomId: 'room', recording: other })?.id).toBe('r1');
  });

  it('ignores an event without a recording', () => {
    expect(afterRecordingChanged(base, {})).toBe(base);
    expect(afterRecordingChanged(null, null)).toBeNull();
  });
});
