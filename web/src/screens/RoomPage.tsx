import { useEffect, useState } from 'react';

import { api, ApiError, type Room, type Session } from '../api';
import { Header } from '../components/Header';
import { describeError } from '../errors';
import { linkHandler } from '../router';
import { CallView } from './CallView';
import { PreJoin, type JoinChoice } from './PreJoin';

type Props = { session: Session; roomId: string; onExpired: () => void };

/** A room's page: the pre-join screen (devices, preview), then the call. */
export function RoomPage({ session, roomId, onExpired }: Props) {
  const [room, setRoom] = useState<Room | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [choice, setChoice] = useState<JoinChoice | null>(null);

  useEffect(() => {
    if (choice) return;
    let cancelled = false;
    api.getRoom(session.token, roomId).then(
      (found) => !cancelled && setRoom(found),
      (caught) => {
        if (cancelled) return;
        if (caught instanceof ApiError && caught.status === 401) onExpired();
        else setError(describeError(caught));
      },
    );
    return () => {
      cancelled = true;
    };
  }, [session.token, roomId, onExpired, choice]);

  if (room && choice) {
    return <CallView session={session} room={room} choice={choice} onTryAgain={() => setChoice(null)} />;
  }
  return (
    <>
      <Header user={session.user} />
      {error ? (
        <main className="ended-page">
          <h1>This room cannot be opened</h1>
          <p role="alert">{error}</p>
          <a className="button primary" href="/rooms" onClick={linkHandler('/rooms')}>
            Back to rooms
          </a>
        </main>
      ) : room ? (
        <PreJoin room={room} defaultName={session.user.displayName} onJoin={setChoice} />
      ) : (
        <main className="ended-page">
          <p>Loading the room…</p>
        </main>
      )}
    </>
  );
}
