// When to try joining again after a lost connection: exponential backoff, cut short when the
// browser says the network is back (a phone that changed networks, a laptop back on Wi-Fi), and
// no pointless attempts while it says it is offline.

/** The first wait before joining again (ms). */
export const RETRY_FIRST_MS = 1000;
/** The longest wait between tries (ms). */
export const RETRY_MAX_MS = 10000;

/** Delays of 1 s, 2 s, 4 s … up to RETRY_MAX_MS; back to the first after reset(). */
export class Backoff {
  private delay: number;

  constructor(
    private readonly first = RETRY_FIRST_MS,
    private readonly max = RETRY_MAX_MS,
  ) {
    this.delay = first;
  }

  /** The delay to wait now; the one after it doubles. */
  next(): number {
    const delay = this.delay;
    this.delay = Math.min(this.delay * 2, this.max);
    return delay;
  }

  reset(): void {
    this.delay = this.first;
  }
}

/** What the waiting needs from the page: `navigator.onLine` and the window's online event. */
export type NetworkWatch = {
  isOnline: () => boolean;
  /** Call `listener` on the next `online` event; returns a function that stops listening. */
  onOnline: (listener: () => void) => () => void;
  /** Call `listener` on every `offline` event until the returned function is called. */
  onOffline?: (listener: () => void) => () => void;
};

/** How a wait ended: its time passed, the network came back, or the call ended. */
export type WaitOutcome = 'elapsed' | 'online' | 'cancelled';

/**
 * Wait `ms`, or less when the network comes back; while the browser is offline the wait lasts until
 * it is online again or `offlineMaxMs` passes (a wrong onLine flag must not stop the retries).
 * `cancel` ends the wait early (the person left).
 */
export function waitBeforeRetry(
  ms: number,
  network: NetworkWatch,
  cancel: { cancelled: () => boolean; onCancel: (listener: () => void) => () => void },
  offlineMaxMs = 60000,
): Promise<WaitOutcome> {
  if (cancel.cancelled()) return Promise.resolve('cancelled');
  const limit = network.isOnline() ? ms : Math.max(ms, offlineMaxMs);
  return new Promise((resolve) => {
    const stops: Array<() => void> = [];
    const finish = (outcome: WaitOutcome) => {
      for (const stop of stops) stop();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish('elapsed'), limit);
    stops.push(() => clearTimeout(timer));
    stops.push(network.onOnline(() => finish('online')));
    stops.push(cancel.onCancel(() => finish('cancelled')));
  });
}

/** The real page's network watch. */
export const browserNetwork: NetworkWatch = {
  isOnline: () => (typeof navigator === 'undefined' ? true : navigator.onLine !== false),
  onOnline: (listener) => {
    if (typeof window === 'undefined') return () => undefined;
    window.addEventListener('online', listener, { once: true });
    return () => window.removeEventListener('online', listener);
  },
  onOffline: (listener) => {
    if (typeof window === 'undefined') return () => undefined;
    window.addEventListener('offline', listener);
    return () => window.removeEventListener('offline', listener);
  },
};
