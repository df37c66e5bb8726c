import { useCallback, useEffect, useState, type FormEvent } from 'react';

import { api, type Room, type Session } from '../api';
import { Header } from '../components/Header';
import { describeError } from '../errors';
import { linkHandler, navigate } from '../router';

const REFRESH_MS = 10000;

function participants(count: number, max: number | null): string {
  const people = `${count} ${count === 1 ? 'person' : 'people'}`;
  return max ? `${people} of ${max}` : people;
}

export function RoomList({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [rooms, setRooms] = useState<Room[] | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [refreshing, setRefreshing] = useState(false);
  const [name, setName] = useState('');
  const [isPublic, setIsPublic] = useState(true);
  const [maxParticipants, setMaxParticipants] = useState('');
  const [createError, setCreateError] = useState<string | null>(null);
  const [creating, setCreating] = useState(false);
  const [roomId, setRoomId] = useState('');
  const [confirming, setConfirming] = useState<string | null>(null);

  const refresh = useCallback(async () => {
    setRefreshing(true);
    try {
      setRooms(await api.listRooms(session.token));
      setLoadError(null);
    } catch (error) {
      setLoadError(describeError(error));
    } finally {
      setRefreshing(false);
    }
  }, [session.token]);

  useEffect(() => {
    void refresh();
    const timer = setInterval(() => void refresh(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [refresh]);

  const create = async (event: FormEvent) => {
    event.preventDefault();
    setCreating(true);
    setCreateError(null);
    try {
      const max = maxParticipants.trim() ? Number(maxParticipants) : null;
      const room = await api.createRoom(session.token, name.trim(), isPublic, max);
      navigate(`/rooms/${room.id}`);
    } catch (error) {
      setCreateError(describeError(error));
      setCreating(false);
    }
  };

  const remove = async (room: Room) => {
    setConfirming(null);
    try {
      await api.deleteRoom(session.token, room.id);
      setRooms((current) => current?.filter((r) => r.id !== room.id) ?? null);
    } catch (error) {
      setLoadError(describeError(error));
    }
  };

  const joinById = (event: FormEvent) => {
    event.preventDefault();
    // a pasted invite link works as well as a bare id
    const id = roomId.trim().replace(/^.*\/rooms\//, '').replace(/[/?#].*$/, '');
    if (id) navigate(`/rooms/${encodeURIComponent(id)}`);
  };

  return (
    <>
      <Header user={session.user} onSignOut={onSignOut} />
      <main className="rooms-page">
        <section className="card rooms-card" aria-labelledby="rooms-title">
          <div className="section-head">
            <h1 id="rooms-title">Rooms</h1>
            <button type="button" className="button" onClick={() => void refresh()} disabled={refreshing}>
              {refreshing ? 'Refreshing…' : 'Refresh'}
            </button>
          </div>
          {loadError && (
            <p className="form-error" role="alert">
              {loadError}
            </p>
          )}
          {rooms === null && !loadError && <p>Loading rooms…</p>}
          {rooms?.length === 0 && <p className="empty">No rooms yet. Create the first one.</p>}
          {rooms && rooms.length > 0 && (
            <ul className="room-list" aria-label="Public rooms and yours">
              {rooms.map((room) => (
                <li key={room.id} className="room-row" data-room-id={room.id}>
                  <div className="room-info">
                    <span className="room-name">{room.name}</span>
                    <span className="room-tags">
                      {!room.isPublic && <span className="tag">Private</span>}
                      {room.ownerId === session.user.id && <span className="tag mine">Yours</span>}
                    </span>
                  </div>
                  <span className="room-count">
                    <span aria-hidden="true" className={room.participantCount > 0 ? 'live-dot' : 'idle-dot'} />
                    {participants(room.participantCount, room.maxParticipants)}
                    <span className="visually-hidden"> in the room</span>
                  </span>
                  <div className="room-actions">
                    {room.ownerId === session.user.id &&
                      (confirming === room.id ? (
                        <>
                          <button type="button" className="button danger" onClick={() => void remove(room)}>
                            Delete for everyone
                          </button>
                          <button type="button" className="button ghost" onClick={() => setConfirming(null)}>
                            Keep
                          </button>
                        </>
                      ) : (
                        <button
                          type="button"
                          className="button ghost"
                          onClick={() => setConfirming(room.id)}
                          aria-label={`Delete ${room.name}`}
                        >
                          Delete
                        </button>
                      ))}
                    <a
                      className="button primary"
                      href={`/rooms/${room.id}`}
                      onClick={linkHandler(`/rooms/${room.id}`)}
                      aria-label={`Join ${room.name}`}
                    >
                      Join
                    </a>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
        <div className="rooms-side">
          <section className="card" aria-labelledby="create-title">
            <h2 id="create-title">Create a room</h2>
            <form className="form" onSubmit={create}>
              <label>
                Room name
                <input name="roomName" value={name} onChange={(e) => setName(e.target.value)} required maxLength={100} />
              </label>
              <label className="check">
                <input type="checkbox" checked={isPublic} onChange={(e) => setIsPublic(e.target.checked)} />
                Listed publicly
              </label>
              <label>
                Participant limit (optional)
                <input
                  name="maxParticipants"
                  type="number"
                  min={1}
                  max={10000}
                  inputMode="numeric"
                  value={maxParticipants}
                  onChange={(e) => setMaxParticipants(e.target.value)}
                />
              </label>
              {createError && (
                <p className="form-error" role="alert">
                  {createError}
                </p>
              )}
              <button className="button primary" type="submit" disabled={creating}>
                Create room
              </button>
            </form>
          </section>
          <section className="card" aria-labelledby="join-title">
            <h2 id="join-title">Join with a link</h2>
            <form className="form" onSubmit={joinById}>
              <label>
                Room link or ID
                <input name="roomId" value={roomId} onChange={(e) => setRoomId(e.target.value)} required />
              </label>
              <button className="button" type="submit">
                Go to room
              </button>
            </form>
          </section>
        </div>
      </main>
    </>
  );
}
