import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { Backoff, waitBeforeRetry, type NetworkWatch } from './retry';

function fakeNetwork(online: boolean) {
  const listeners = new Set<() => void>();
  const network: NetworkWatch & { goOnline: () => void; listening: () => number } = {
    isOnline: () => online,
    onOnline: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    goOnline: () => {
      online = true;
      for (const listener of [...listeners]) listener();
    },
    listening: () => listeners.size,
  };
  return network;
}

function fakeCancel() {
  let cancelled = false;
  const listeners = new Set<() => void>();
  return {
    cancelled: () => cancelled,
    onCancel: (listener: () => void) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    cancel: () => {
      cancelled = true;
      for (const listener of [...listeners]) listener();
    },
  };
}

describe('Backoff', () => {
  it('doubles up to the maximum and starts again after reset', () => {
    const backoff = new Backoff(1000, 10000);
    expect([1, 2, 3, 4, 5, 6].map(() => backoff.next())).toEqual([1000, 2000, 4000, 8000, 10000, 10000]);
    backoff.reset();
    expect(backoff.next()).toBe(1000);
  });
});

describe('waitBeforeRetry', () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it('waits the delay while online', async () => {
    const network = fakeNetwork(true);
    const wait = waitBeforeRetry(2000, network, fakeCancel());
    await vi.advanceTimersByTimeAsync(1999);
    let done = false;
    void wait.then(() => (done = true));
    await Promise.resolve();
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await expect(wait).resolves.toBe('elapsed');
    expect(network.listening()).toBe(0);
  });

  it('while offline waits for the network, not the delay, and ends when it is back', async () => {
    const network = fakeNetwork(false);
    const wait = waitBeforeRetry(1000, network, fakeCancel(), 60000);
    let outcome: string | null = null;
    void wait.then((o) => (outcome = o));
    await vi.advanceTimersByTimeAsync(5000);
    expect(outcome).toBeNull();
    network.goOnline();
    await expect(wait).resolves.toBe('online');
    expect(network.listening()).toBe(0);
  });

  it('gives up waiting for the network after offlineMaxMs (onLine may be wrong)', async () => {
    const wait = waitBeforeRetry(1000, fakeNetwork(false), fakeCancel(), 30000);
    await vi.advanceTimersByTimeAsync(30000);
    await expect(wait).resolves.toBe('elapsed');
  });

  it('the network coming back cuts a long backoff short', async () => {
    const network = fakeNetwork(true);
    const wait = waitBeforeRetry(10000, network, fakeCancel());
    await vi.advanceTimersByTimeAsync(100);
    network.goOnline();
    await expect(wait).resolves.toBe('online');
  });

  it('ends at once when cancelled, before or during the wait', async () => {
    const before = fakeCancel();
    before.cancel();
    await expect(waitBeforeRetry(1000, fakeNetwork(true), before)).resolves.toBe('cancelled');
    const during = fakeCancel();
    const network = fakeNetwork(true);
    const wait = waitBeforeRetry(10000, network, during);
    during.cancel();
    await expect(wait).resolves.toBe('cancelled');
    expect(network.listening()).toBe(0);
  });
});
