// Connection quality of a remote peer, from the receiver's inbound-rtp stats over the last interval.

import type { Quality } from './roomState.js';

/** Counters of what was received from one peer, at one moment. */
export type ReceiveSample = { packetsReceived: number; packetsLost: number; jitter: number };

/** Add up the inbound-rtp entries of RTCStatsReports (a peer's audio and video). */
export function sampleOf(reports: Iterable<Record<string, unknown>>): ReceiveSample {
  const sample: ReceiveSample = { packetsReceived: 0, packetsLost: 0, jitter: 0 };
  for (const entry of reports) {
    if (entry.type !== 'inbound-rtp') continue;
    sample.packetsReceived += Number(entry.packetsReceived ?? 0);
    sample.packetsLost += Number(entry.packetsLost ?? 0);
    sample.jitter = Math.max(sample.jitter, Number(entry.jitter ?? 0));
  }
  return sample;
}

/**
 * Good under 2% loss and 30 ms jitter, fair under 8% and 100 ms, poor beyond; unknown without
 * a previous sample or when nothing arrived (a muted peer sends nothing, which is not bad).
 */
export function qualityBetween(previous: ReceiveSample | undefined, current: ReceiveSample): Quality {
  if (!previous) return 'unknown';
  const received = current.packetsReceived - previous.packetsReceived;
  const lost = Math.max(0, current.packetsLost - previous.packetsLost);
  if (received <= 0 && lost === 0) return 'unknown';
  const loss = lost / (received + lost);
  const jitterMs = current.jitter * 1000;
  if (loss < 0.02 && jitterMs < 30) return 'good';
  if (loss < 0.08 && jitterMs < 100) return 'fair';
  return 'poor';
}
