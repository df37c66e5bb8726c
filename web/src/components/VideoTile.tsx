import { useEffect, useRef } from 'react';

import type { Quality } from '@switchyard/client';

import type { Tile } from '../call/callState';
import { Icon } from './icons';

type Props = {
  tile: Tile;
  track: MediaStreamTrack | null;
  /** Called with the tile's height in CSS pixels whenever it changes (remote simulcast video only). */
  onHeight?: (height: number) => void;
};

const QUALITY_LABEL: Record<Quality, string> = {
  good: 'good connection',
  fair: 'fair connection',
  poor: 'poor connection',
  unknown: '',
};

function initials(name: string): string {
  const words = name.replace(/\(.*?\)/g, '').trim().split(/\s+/);
  return (words[0]?.[0] ?? '?').toUpperCase() + (words[1]?.[0] ?? '').toUpperCase();
}

export function describeTile(tile: Tile): string {
  const facts = [
    tile.audioMuted && tile.source === 'camera' ? 'microphone muted' : '',
    tile.videoOff ? 'camera off' : '',
    tile.handRaised ? 'hand raised' : '',
    tile.activeSpeaker ? 'speaking' : '',
    QUALITY_LABEL[tile.quality],
  ].filter(Boolean);
  return facts.length ? `${tile.displayName}: ${facts.join(', ')}` : tile.displayName;
}

export function VideoTile({ tile, track, onHeight }: Props) {
  const videoRef = useRef<HTMLVideoElement>(null);
  const figureRef = useRef<HTMLElement>(null);

  useEffect(() => {
    const video = videoRef.current;
    if (!video) return;
    if (!track) {
      video.srcObject = null;
      return;
    }
    const current = video.srcObject as MediaStream | null;
    if (current?.getVideoTracks()[0] !== track) video.srcObject = new MediaStream([track]);
    video.play().catch(() => {
      // muted video may autoplay everywhere; a refusal here resolves on the next user gesture
    });
  }, [track]);

  useEffect(() => {
    const figure = figureRef.current;
    if (!figure || !onHeight) return;
    const observer = new ResizeObserver((entries) => {
      const height = entries[0]?.contentRect.height ?? 0;
      if (height > 0) onHeight(height);
    });
    observer.observe(figure);
    return () => observer.disconnect();
  }, [onHeight]);

  const showVideo = Boolean(track) && !tile.videoOff;
  return (
    <figure
      ref={figureRef}
      className={`tile${tile.activeSpeaker ? ' speaking' : ''}${tile.source === 'screen' ? ' screen' : ''}`}
      aria-label={describeTile(tile)}
      data-peer-id={tile.peerId}
      data-self={tile.isSelf ? 'true' : 'false'}
      data-source={tile.source}
      data-active-speaker={tile.activeSpeaker ? 'true' : 'false'}
      data-audio-muted={tile.audioMuted ? 'true' : 'false'}
      data-video-off={tile.videoOff ? 'true' : 'false'}
      data-hand-raised={tile.handRaised ? 'true' : 'false'}
      data-quality={tile.quality}
    >
      <video
        ref={videoRef}
        autoPlay
        playsInline
        muted
        hidden={!showVideo}
        className={tile.isSelf && tile.source === 'camera' ? 'mirrored' : undefined}
      />
      {!showVideo && (
        <div className="avatar" aria-hidden="true">
          {initials(tile.displayName)}
        </div>
      )}
      {tile.reactions.length > 0 && (
        <div className="reactions" aria-live="polite">
          {tile.reactions.map((reaction) => (
            <span key={reaction.id} className="reaction" data-emoji={reaction.emoji} style={{ left: `${20 + ((reaction.id * 37) % 60)}%` }}>
              {reaction.emoji}
            </span>
          ))}
        </div>
      )}
      {tile.handRaised && (
        <span className="badge hand" title="Hand raised">
          <Icon name="hand" size={18} />
          <span className="visually-hidden">Hand raised</span>
        </span>
      )}
      <figcaption>
        {tile.source === 'camera' && tile.audioMuted && (
          <span className="muted-icon" title="Microphone muted">
            <Icon name="mic-off" size={16} />
          </span>
        )}
        {tile.source === 'camera' && tile.videoOff && (
          <span className="muted-icon" title="Camera off">
            <Icon name="camera-off" size={16} />
          </span>
        )}
        {tile.activeSpeaker && (
          <span className="speaking-icon" title="Speaking">
            <Icon name="speaking" size={16} />
          </span>
        )}
        <span className="tile-name">{tile.displayName}</span>
        {!tile.isSelf && (
          <span className={`quality q-${tile.quality}`} title={QUALITY_LABEL[tile.quality] || 'measuring connection'}>
            <span />
            <span />
            <span />
          </span>
        )}
      </figcaption>
    </figure>
  );
}
