import { useCallback, useEffect, useMemo, useReducer, useRef, useState } from 'react';

import { RoomClient } from '@switchyard/client';

import { api, type Recording, type Room, type Session } from '../api';
import { callReducer, initialCallState, tilesOf, type CallAction } from '../call/callState';
import { iceTransportPolicyFrom } from '../call/ice';
import { cameraCodecSetting } from '../call/layout';
import { attachReactions, REACTIONS_LABEL, type Emoji } from '../call/reactions';
import { ChatPanel } from '../components/ChatPanel';
import { E2ee, type E2eeStatus } from '../e2ee';
import { Controls } from '../components/Controls';
import { Header } from '../components/Header';
import { afterRecordingChanged, RecordingControl } from '../components/RecordingControl';
import { RemoteAudio } from '../components/RemoteAudio';
import { VideoGrid } from '../components/VideoGrid';
import { Icon } from '../components/icons';
import { describeError } from '../errors';
import { navigate } from '../router';
import { useReleaseOnUnmount } from '../useRelease';
import type { JoinChoice } from './PreJoin';

declare global {
  interface Window {
    /** The call in progress, for debugging from the console and for the browser tests. */
    switchyard?: RoomClient;
  }
}

type Props = { session: Session; room: Room; choice: JoinChoice; onTryAgain: () => void };

/** What the person is told when a transform of an end-to-end encrypted call fails. */
function e2eeFailure(status: E2eeStatus, who: string | undefined): string {
  if (status.role === 'encrypt') return `Your ${status.kind} could not be encrypted, so it is not sent (${status.reason}).`;
  return (
    `The ${status.kind} of ${who ?? 'a participant'} cannot be decrypted: their end-to-end encryption passphrase ` +
    'differs from yours, or they joined without one.'
  );
}

const STATUS_TEXT = {
  connecting: 'Joining…',
  joined: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Room closed',
  left: 'Left',
  failed: 'Disconnected',
} as const;

export function CallView({ session, room, choice, onTryAgain }: Props) {
  const [state, dispatch] = useReducer(callReducer, choice.self, initialCallState);
  const [call, setCall] = useState<RoomClient | null>(null);
  /** Sends a reaction on the call's data channel and floats it over the own tile (false: not open). */
  const sendReaction = useRef<(emoji: Emoji) => boolean>(() => false);
  const [chatOpen, setChatOpen] = useState(false);
  const [unread, setUnread] = useState(0);
  const chatOpenRef = useRef(chatOpen);
  chatOpenRef.current = chatOpen;
  const [recording, setRecording] = useState<Recording | null>(null);
  const peersRef = useRef(state.peers);
  peersRef.current = state.peers;

  useEffect(() => {
    let active = true;
    const onAction = (action: CallAction) => {
      if (!active) return;
      if (action.type === 'server' && action.event === 'chat' && !chatOpenRef.current) setUnread((n) => n + 1);
      if (action.type === 'server' && action.event === 'recording-changed') {
        setRecording((current) => afterRecordingChanged(current, action.data));
      }
      if (action.type === 'joined') {
        // whether the room records now (also after a reconnect, when events may have been missed)
        api
          .listRecordings(session.token, room.id)
          .then((list) => active && setRecording(list.find((r) => r.state === 'recording') ?? null))
          .catch(() => undefined);
      }
      dispatch(action);
    };
    let e2ee: E2ee | null = null;
    if (choice.e2eePassphrase) {
      try {
        e2ee = new E2ee(choice.e2eePassphrase, room.id, (status) => {
          if (status.state === 'failing') {
            onAction({ type: 'error', message: e2eeFailure(status, peersRef.current[status.peerId ?? '']?.displayName) });
          }
        });
      } catch (error) {
        // never join unencrypted when encryption was asked for
        onAction({ type: 'failed', message: (error as Error).message });
        return () => {
          active = false;
        };
      }
    }
    const current = new RoomClient({
      url: window.location.origin,
      token: session.token,
      roomId: room.id,
      displayName: choice.displayName,
      media: choice.media,
      self: choice.self,
      loadHistory: (roomId) => api.messages(session.token, roomId),
      describeError,
      // E2EE: VP8 simulcast, the codec whose clear header the server needs is known (e2ee/frame.ts)
      camera: { codec: e2ee ? null : cameraCodecSetting(window.location.search, localStorage) },
      // TURN servers come with the server's answer; `?iceTransportPolicy=relay` uses them only
      transport: { iceTransportPolicy: iceTransportPolicyFrom(window.location.search) },
      // set on each RTCRtpSender/RTCRtpReceiver as it is made, before any frame: nothing leaves clear
      ...(e2ee ? { transforms: e2ee.transforms } : {}),
      acceptData: (info) => info.label === REACTIONS_LABEL,
    });
    current.on('action', onAction);

    sendReaction.current = attachReactions(current, onAction);

    setCall(current);
    window.switchyard = current;
    void current.join();
    return () => {
      active = false;
      sendReaction.current = () => false;
      void current.leave().finally(() => e2ee?.close());
      if (window.switchyard === current) delete window.switchyard;
    };
  }, [session.token, room.id, choice]);

  useReleaseOnUnmount(() => {
    choice.media.mic?.stop();
    choice.media.camera?.stop();
  });

  useEffect(() => {
    if (state.status === 'left') navigate('/rooms');
  }, [state.status]);

  useEffect(() => {
    if (chatOpen) setUnread(0);
  }, [chatOpen]);

  const tiles = useMemo(
    () => tilesOf(state, choice.displayName, Boolean(choice.media.camera)),
    [state, choice.displayName, choice.media.camera],
  );

  const audioTracks = useMemo(() => {
    if (!call) return [];
    return Object.values(state.consumers)
      .filter((c) => c.kind === 'audio')
      .map((c) => ({ id: c.consumerId, track: call.remoteTrack(c.consumerId) }))
      .filter((t): t is { id: string; track: MediaStreamTrack } => t.track !== null);
  }, [call, state.consumers]);

  const sendChat = useCallback((text: string) => call?.sendChat(text) ?? Promise.resolve(false), [call]);

  if (state.status === 'closed' || state.status === 'failed') {
    return (
      <>
        <Header user={session.user} />
        <main className="ended-page">
          <h1>{state.status === 'closed' ? 'The room was closed' : 'You are no longer in the call'}</h1>
          <p role="alert">{state.endedReason}</p>
          <div className="row">
            <button type="button" className="button primary" onClick={() => navigate('/rooms')}>
              Back to rooms
            </button>
            {state.status === 'failed' && (
              <button type="button" className="button" onClick={onTryAgain}>
                Try again
              </button>
            )}
          </div>
        </main>
      </>
    );
  }

  const peopleCount = Object.keys(state.peers).length + 1;
  return (
    <div className="call-page" data-status={state.status}>
      <Header user={session.user}>
        <div className="call-title">
          <h1>{room.name}</h1>
          <span className="people-count">
            {peopleCount} {peopleCount === 1 ? 'person' : 'people'}
          </span>
          <span className={`status-pill status-${state.status}`} role="status" aria-live="polite">
            {STATUS_TEXT[state.status]}
          </span>
          {choice.e2eePassphrase && (
            <span className="status-pill e2ee-pill" title="End-to-end encrypted: video and audio are encrypted in the browsers; the server cannot see them">
              Encrypted
            </span>
          )}
          <RecordingControl
            token={session.token}
            roomId={room.id}
            recording={recording}
            isOwner={room.ownerId === session.user.id}
            onChange={setRecording}
            onError={(message) => dispatch({ type: 'error', message })}
          />
        </div>
      </Header>
      {state.status === 'reconnecting' && (
        <div className="banner warning" role="alert">
          The connection was lost. Reconnecting…
        </div>
      )}
      {state.error && (
        <div className="banner error" role="alert">
          <span>{state.error}</span>
          <button type="button" className="icon-button" aria-label="Dismiss" onClick={() => dispatch({ type: 'error', message: null })}>
            <Icon name="close" size={16} />
          </button>
        </div>
      )}
      <div className={`call-body${chatOpen ? ' with-chat' : ''}`}>
        <main className="stage" aria-label="Participants">
          {call && <VideoGrid tiles={tiles} call={call} state={state} />}
        </main>
        {chatOpen && (
          <ChatPanel
            messages={state.messages}
            selfUserId={session.user.id}
            onSend={sendChat}
            onClose={() => setChatOpen(false)}
          />
        )}
      </div>
      <Controls
        self={state.self}
        hasMic={Boolean(choice.media.mic)}
        hasCamera={Boolean(choice.media.camera)}
        canShareScreen={typeof navigator.mediaDevices?.getDisplayMedia === 'function'}
        chatOpen={chatOpen}
        unread={unread}
        onMic={() => void call?.setMicMuted(!state.self.audioMuted)}
        onCamera={() => void call?.setCameraOff(!state.self.videoMuted)}
        onScreen={() => void (state.self.screenSharing ? call?.stopScreenShare() : call?.startScreenShare())}
        onHand={() => void call?.setHandRaised(!state.self.handRaised)}
        onReact={call && state.status === 'joined' ? (emoji) => void sendReaction.current(emoji) : undefined}
        onChat={() => setChatOpen((open) => !open)}
        onLeave={() => void call?.leave()}
      />
      <RemoteAudio tracks={audioTracks} />
    </div>
  );
}
