import { describe, expect, it } from 'vitest';

import { LocalDataChannel } from './dataChannel';

/** The part of mediasoup-client's DataProducer a LocalDataChannel uses. */
function producer(readyState: RTCDataChannelState) {
  const sent: unknown[] = [];
  return {
    id: 'dp1',
    closed: false,
    readyState,
    sent,
    send(data: unknown) {
      sent.push(data);
    },
    close() {
      this.closed = true;
    },
  };
}

type Producer = Parameters<LocalDataChannel['attach']>[0];

describe('LocalDataChannel', () => {
  it('sends only while a data producer of the current join is open', () => {
    const channel = new LocalDataChannel('chat', { ordered: false }, () => undefined);
    expect(channel.send('lost')).toBe(false);
    const connecting = producer('connecting');
    channel.attach(connecting as unknown as Producer);
    expect(channel.send('early')).toBe(false);
    connecting.readyState = 'open';
    expect(channel.open).toBe(true);
    expect(channel.send('hi')).toBe(true);
    expect(connecting.sent).toEqual(['hi']);
    // the transport went (reconnecting): nothing is sent until the next join attaches a producer
    channel.attach(null);
    expect(channel.send('between')).toBe(false);
    expect(channel.id).toBeNull();
  });

  it('closes once, telling its owner while it still knows its id', () => {
    const closedIds: Array<string | null> = [];
    const channel = new LocalDataChannel('x', {}, (c) => closedIds.push(c.id));
    const open = producer('open');
    channel.attach(open as unknown as Producer);
    channel.close();
    channel.close();
    expect(closedIds).toEqual(['dp1']);
    expect(open.closed).toBe(true);
    expect(channel.closed).toBe(true);
    expect(channel.send('after')).toBe(false);
  });
});
