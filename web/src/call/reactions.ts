// Emoji reactions: sent over a DataChannel (the server's DataProducer/DataConsumer, SCTP), shown
// floating over the sender's tile for everyone. Chat stays on Socket.IO, where it is persisted;
// a reaction is gone after a few seconds, so a lost one costs nothing: the channel is unordered
// with a short lifetime (maxPacketLifeTime), never waiting behind a retransmission. The channel is
// the client package's (RoomClient.publishData and its `data` event); the emoji are the app's.

import type { RoomClient } from '@switchyard/client';

export const REACTIONS = ['👍', '❤️', '😂', '🎉', '👏', '😮'] as const;
export type Emoji = (typeof REACTIONS)[number];

/** The DataChannel label the app's reaction data producers carry. */
export const REACTIONS_LABEL = 'reactions';
/** A reaction not delivered within this is not worth delivering (ms). */
export const REACTION_LIFETIME_MS = 2000;
/** How long a reaction floats over a tile (ms); the CSS animation lasts as long. */
export const REACTION_SHOWN_MS = 3000;
/** At most this many reactions float over one tile; older ones give way. */
export const MAX_REACTIONS_PER_TILE = 8;

export type Reaction = { id: number; peerId: string; emoji: Emoji };

/** The message a reaction travels as. */
export function encodeReaction(emoji: Emoji): string {
  return JSON.stringify({ emoji });
}

/** A received message's emoji, or null for anything that is not one of ours (bad input never wins). */
export function decodeReaction(message: unknown): Emoji | null {
  if (typeof message !== 'string' || message.length > 64) return null;
  try {
    const value = JSON.parse(message) as unknown;
    const emoji = (value as { emoji?: unknown } | null)?.emoji;
    return (REACTIONS as readonly unknown[]).includes(emoji) ? (emoji as Emoji) : null;
  } catch {
    return null;
  }
}

/**
 * Reactions on a RoomClient: publish this person's `reactions` data channel, turn the others'
 * messages into `reaction` actions (each followed by `reaction-expired` after REACTION_SHOWN_MS),
 * and return the function that sends one (false while the channel is not open) and shows it on the
 * own tile. The client is made with `acceptData` for REACTIONS_LABEL, so only these are received.
 */
export function attachReactions(
  client: RoomClient,
  dispatch: (action: { type: 'reaction'; reaction: Reaction } | { type: 'reaction-expired'; id: number }) => void,
): (emoji: Emoji) => boolean {
  let nextId = 0;
  const show = (peerId: string, emoji: Emoji) => {
    const id = ++nextId;
    dispatch({ type: 'reaction', reaction: { id, peerId, emoji } });
    setTimeout(() => dispatch({ type: 'reaction-expired', id }), REACTION_SHOWN_MS);
  };
  client.on('data', ({ peerId, label, data }) => {
    const emoji = label === REACTIONS_LABEL ? decodeReaction(data) : null;
    if (emoji) show(peerId, emoji);
  });
  const channel = client.publishData(REACTIONS_LABEL, { ordered: false, maxPacketLifeTime: REACTION_LIFETIME_MS });
  return (emoji) => {
    if (!channel.send(encodeReaction(emoji))) return false;
    if (client.state.selfPeerId) show(client.state.selfPeerId, emoji);
    return true;
  };
}
