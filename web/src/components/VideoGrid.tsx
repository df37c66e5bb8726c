import { useCallback, useLayoutEffect, useRef, useState } from 'react';

import { layerForSize, type RoomClient, type RoomState } from '@switchyard/client';

import type { Tile } from '../call/callState';
import { gridShape } from '../call/layout';
import { VideoTile } from './VideoTile';

const DEFAULT_SOURCE_HEIGHT = 720;

function RemoteTile({ tile, call, state }: { tile: Tile; call: RoomClient; state: RoomState }) {
  const consumerId = tile.videoConsumerId;
  const consumer = consumerId ? state.consumers[consumerId] : undefined;
  const producer = consumer ? state.producers[consumer.producerId] : undefined;
  const height = Number(producer?.appData?.height) || DEFAULT_SOURCE_HEIGHT;
  const simulcast = consumer?.type === 'simulcast';
  const onHeight = useCallback(
    (tileHeight: number) => {
      if (consumerId) call.setPreferredLayer(consumerId, layerForSize(tileHeight, height, window.devicePixelRatio || 1));
    },
    [call, consumerId, height],
  );
  return (
    <VideoTile tile={tile} track={consumerId ? call.remoteTrack(consumerId) : null} onHeight={simulcast ? onHeight : undefined} />
  );
}

export function VideoGrid({ tiles, call, state }: { tiles: Tile[]; call: RoomClient; state: RoomState }) {
  const ref = useRef<HTMLDivElement>(null);
  const [size, setSize] = useState({ width: 0, height: 0 });

  useLayoutEffect(() => {
    const element = ref.current;
    if (!element) return;
    const measure = () => setSize({ width: element.clientWidth, height: element.clientHeight });
    measure();
    const observer = new ResizeObserver(measure);
    observer.observe(element);
    return () => observer.disconnect();
  }, []);

  const shape = gridShape(tiles.length, size.width, size.height);
  return (
    <div
      ref={ref}
      className="video-grid"
      role="list"
      aria-label={`${tiles.length} ${tiles.length === 1 ? 'participant' : 'participants'}`}
      data-tiles={tiles.length}
      style={{ gridTemplateColumns: `repeat(${shape.columns}, ${Math.floor(shape.tileWidth)}px)` }}
    >
      {tiles.map((tile) => (
        <div role="listitem" key={tile.key} className="tile-slot" style={{ width: Math.floor(shape.tileWidth) }}>
          {tile.isSelf ? (
            <VideoTile tile={tile} track={call.localTrack(tile.source)} />
          ) : (
            <RemoteTile tile={tile} call={call} state={state} />
          )}
        </div>
      ))}
    </div>
  );
}
