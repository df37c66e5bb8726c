// Emoji reactions: sent over a DataChannel (the server's DataProducer/DataConsumer, SCTP), shown
// floating over the sender's tile for everyone. Chat stays on Socket.IO, where it is persisted;
// a reaction is gone after a few seconds, so a lost one costs nothing: the channel is unordered
// with a short lifetime (maxPacketLifeTime), never waiting behind a retransmission.

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
