// The REST API of PROTOCOL.md §2, typed. Every failure becomes an ApiError with the contract's code.

import type { ChatMessage } from '@switchyard/client';

export type User = { id: string; email: string | null; displayName: string; isGuest: boolean };

export type Room = {
  id: string;
  name: string;
  ownerId: string;
  isPublic: boolean;
  maxParticipants: number | null;
  createdAt: string;
  participantCount: number;
};

export type { ChatMessage };

export type Session = { user: User; token: string };

/** A room's recording (docs/rest.md): `recording` while it runs, then `stopped` or `failed`. */
export type Recording = {
  id: string;
  roomId: string;
  producerId: string | null;
  state: 'recording' | 'stopped' | 'failed';
  stopReason: string | null;
  startedAt: string;
  stoppedAt: string | null;
  sizeBytes: number;
  durationMs: number;
  files: { name: string; sizeBytes: number }[];
};

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

async function request<T>(method: string, path: string, token: string | null, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response: Response;
  try {
    response = await fetch(`/api${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, 'network_error', 'The server cannot be reached.');
  }
  if (response.status === 204) return undefined as T;
  let data: unknown = null;
  try {
    data = await response.json();
  } catch {
    // an answer that is not JSON (a proxy's error page) is reported by status below
  }
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(response.status, error?.code ?? 'http_error', error?.message ?? `HTTP ${response.status}`);
  }
  return data as T;
}

export const api = {
  register: (email: string, password: string, displayName: string) =>
    request<Session>('POST', '/auth/register', null, { email, password, displayName }),
  login: (email: string, password: string) => request<Session>('POST', '/auth/login', null, { email, password }),
  guest: (displayName: string) => request<Session>('POST', '/auth/guest', null, { displayName }),
  me: (token: string) => request<{ user: User }>('GET', '/me', token).then((r) => r.user),
  listRooms: (token: string) => request<{ rooms: Room[] }>('GET', '/rooms', token).then((r) => r.rooms),
  getRoom: (token: string, roomId: string) =>
    request<{ room: Room }>('GET', `/rooms/${encodeURIComponent(roomId)}`, token).then((r) => r.room),
  createRoom: (token: string, name: string, isPublic: boolean, maxParticipants: number | null) =>
    request<{ room: Room }>('POST', '/rooms', token, {
      name,
      isPublic,
      ...(maxParticipants ? { maxParticipants } : {}),
    }).then((r) => r.room),
  deleteRoom: (token: string, roomId: string) =>
    request<void>('DELETE', `/rooms/${encodeURIComponent(roomId)}`, token),
  messages: (token: string, roomId: string, limit = 50) =>
    request<{ messages: ChatMessage[] }>(
      'GET',
      `/rooms/${encodeURIComponent(roomId)}/messages?limit=${limit}`,
      token,
    ).then((r) => r.messages),
  listRecordings: (token: string, roomId: string) =>
    request<{ recordings: Recording[] }>('GET', `/rooms/${encodeURIComponent(roomId)}/recordings`, token).then(
      (r) => r.recordings,
    ),
  startRecording: (token: string, roomId: string) =>
    request<{ recording: Recording }>('POST', `/rooms/${encodeURIComponent(roomId)}/recordings`, token, {}).then(
      (r) => r.recording,
    ),
  stopRecording: (token: string, roomId: string, recordingId: string) =>
    request<{ recording: Recording }>(
      'DELETE',
      `/rooms/${encodeURIComponent(roomId)}/recordings/${encodeURIComponent(recordingId)}`,
      token,
    ).then((r) => r.recording),
};
