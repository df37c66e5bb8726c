import { useState } from 'react';

import { REACTIONS, type Emoji } from '../call/reactions';
import type { SelfState } from '@switchyard/client';
import { Icon, type IconName } from './icons';

type Props = {
  self: SelfState;
  hasMic: boolean;
  hasCamera: boolean;
  canShareScreen: boolean;
  chatOpen: boolean;
  unread: number;
  onMic: () => void;
  onCamera: () => void;
  onScreen: () => void;
  onHand: () => void;
  /** Send a reaction; absent while the reactions channel is not there. */
  onReact?: (emoji: Emoji) => void;
  onChat: () => void;
  onLeave: () => void;
};

function Toggle({
  label,
  short,
  icon,
  pressed,
  danger,
  disabled,
  onClick,
  badge,
}: {
  label: string;
  /** What a phone-sized screen shows instead of `label`, which stays the accessible name. */
  short?: string;
  icon: IconName;
  pressed: boolean;
  danger?: boolean;
  disabled?: boolean;
  onClick: () => void;
  badge?: number;
}) {
  return (
    <button
      type="button"
      className={`control${pressed ? ' pressed' : ''}${danger ? ' danger' : ''}`}
      aria-label={badge ? `${label}, ${badge} unread` : label}
      aria-pressed={pressed}
      disabled={disabled}
      onClick={onClick}
    >
      <Icon name={icon} />
      <span className="control-label" aria-hidden="true">
        <span className="label-long">{label}</span>
        <span className="label-short">{short ?? label}</span>
      </span>
      {badge ? (
        <span className="unread" aria-hidden="true">
          {badge}
        </span>
      ) : null}
    </button>
  );
}

/**
 * Toggle buttons keep one label and say their state with aria-pressed ("Mute, pressed" = muted),
 * so a screen reader never hears a label that contradicts the state.
 */
export function Controls(props: Props) {
  const { self } = props;
  const [picking, setPicking] = useState(false);
  return (
    <nav className="controls" aria-label="Call controls">
      {picking && props.onReact && (
        <div className="reaction-picker" role="group" aria-label="Reactions">
          {REACTIONS.map((emoji) => (
            <button
              key={emoji}
              type="button"
              className="reaction-button"
              aria-label={`React with ${emoji}`}
              onClick={() => props.onReact?.(emoji)}
            >
              {emoji}
            </button>
          ))}
        </div>
      )}
      <Toggle
        label="Mute"
        icon={self.audioMuted ? 'mic-off' : 'mic'}
        pressed={self.audioMuted}
        danger={self.audioMuted}
        disabled={!props.hasMic}
        onClick={props.onMic}
      />
      <Toggle
        label="Stop video"
        short="Video"
        icon={self.videoMuted ? 'camera-off' : 'camera'}
        pressed={self.videoMuted}
        danger={self.videoMuted}
        disabled={!props.hasCamera}
        onClick={props.onCamera}
      />
      {props.canShareScreen && (
        <Toggle
          label="Share screen"
          short="Share"
          icon="screen"
          pressed={self.screenSharing}
          onClick={props.onScreen}
        />
      )}
      <Toggle label="Raise hand" short="Hand" icon="hand" pressed={self.handRaised} onClick={props.onHand} />
      <Toggle label="React" icon="smile" pressed={picking} disabled={!props.onReact} onClick={() => setPicking((p) => !p)} />
      <Toggle label="Chat" icon="chat" pressed={props.chatOpen} onClick={props.onChat} badge={props.chatOpen ? 0 : props.unread} />
      <button type="button" className="control leave" onClick={props.onLeave}>
        <Icon name="leave" />
        <span className="control-label">Leave</span>
      </button>
    </nav>
  );
}
