import { describe, expect, it, vi } from 'vitest';

import { Emitter } from './events';

class Source extends Emitter<{ tick: number; name: string }> {
  fire<K extends 'tick' | 'name'>(name: K, value: { tick: number; name: string }[K]) {
    this.emit(name, value);
  }
}

describe('Emitter', () => {
  it('calls the listeners of an event until they are removed', () => {
    const source = new Source();
    const ticks: number[] = [];
    const stop = source.on('tick', (n) => ticks.push(n));
    source.fire('tick', 1);
    source.fire('name', 'ignored');
    stop();
    source.fire('tick', 2);
    expect(ticks).toEqual([1]);
  });

  it('keeps calling the others when one throws', () => {
    const source = new Source();
    const error = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const seen: string[] = [];
    source.on('name', () => {
      throw new Error('boom');
    });
    source.on('name', (name) => seen.push(name));
    source.fire('name', 'ada');
    expect(seen).toEqual(['ada']);
    expect(error).toHaveBeenCalledOnce();
    error.mockRestore();
  });
});
