import { describe, expect, it } from 'vitest';

import { qualityBetween, sampleOf } from './quality';

const sample = (packetsReceived: number, packetsLost: number, jitter = 0.005) => ({ packetsReceived, packetsLost, jitter });

describe('sampleOf', () => {
  it('adds up inbound-rtp entries and keeps the worst jitter', () => {
    const stats = [
      { type: 'inbound-rtp', kind: 'audio', packetsReceived: 100, packetsLost: 1, jitter: 0.01 },
      { type: 'inbound-rtp', kind: 'video', packetsReceived: 300, packetsLost: 4, jitter: 0.03 },
      { type: 'transport', bytesReceived: 99999 },
    ];
    expect(sampleOf(stats)).toEqual({ packetsReceived: 400, packetsLost: 5, jitter: 0.03 });
  });
});

describe('qualityBetween', () => {
  it('is unknown without a previous sample or without traffic', () => {
    expect(qualityBetween(undefined, sample(100, 0))).toBe('unknown');
    expect(qualityBetween(sample(100, 0), sample(100, 0))).toBe('unknown');
  });

  it('is good with little loss and jitter', () => {
    expect(qualityBetween(sample(100, 0), sample(300, 1))).toBe('good');
  });

  it('is fair with some loss or jitter', () => {
    expect(qualityBetween(sample(100, 0), sample(200, 5))).toBe('fair');
    expect(qualityBetween(sample(100, 0), sample(200, 0, 0.05))).toBe('fair');
  });

  it('is poor with heavy loss or jitter, or only losses', () => {
    expect(qualityBetween(sample(100, 0), sample(200, 20))).toBe('poor');
    expect(qualityBetween(sample(100, 0), sample(200, 0, 0.2))).toBe('poor');
    expect(qualityBetween(sample(100, 0), sample(100, 10))).toBe('poor');
  });
});
