// A small typed event emitter: the client's events without a dependency (mediasoup-client's own
// EnhancedEventEmitter is internal to it, Node's `events` is not in browsers).

/** Listeners by event name; `on` returns the function that removes the listener. */
export class Emitter<Events extends Record<string, unknown>> {
  private readonly listeners = new Map<keyof Events, Set<(value: never) => void>>();

  /** Call `listener` with every `name` event from now on; the returned function stops that. */
  on<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): () => void {
    let set = this.listeners.get(name);
    if (!set) {
      set = new Set();
      this.listeners.set(name, set);
    }
    set.add(listener as (value: never) => void);
    return () => this.off(name, listener);
  }

  off<K extends keyof Events>(name: K, listener: (value: Events[K]) => void): void {
    this.listeners.get(name)?.delete(listener as (value: never) => void);
  }

  /** Call every listener of `name`; one that throws is reported and does not stop the others. */
  protected emit<K extends keyof Events>(name: K, value: Events[K]): void {
    for (const listener of [...(this.listeners.get(name) ?? [])]) {
      try {
        (listener as (value: Events[K]) => void)(value);
      } catch (error) {
        console.error(`switchyard: a listener of "${String(name)}" threw`, error);
      }
    }
  }
}
