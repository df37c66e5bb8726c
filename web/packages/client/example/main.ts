// The smallest page on @switchyard/client: sign in as a guest over REST, open camera and microphone,
// join a room (a new one unless ?room= names one), and show everyone's video.
// `npm run example` serves it with Vite (the API and Socket.IO passed to SWITCHYARD_URL).

import { RoomClient, type RoomState } from '@switchyard/client';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

async function rest<T>(path: string, token: string | null, body: unknown): Promise<T> {
  const response = await fetch(`/api${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data?.error?.message ?? `HTTP ${response.status}`);
  return data as T;
}

/** One <figure> with a <video> per tile, kept by key so playing videos are not restarted. */
function videoTile(key: string, label: string, track: MediaStreamTrack | null, speaking: boolean): void {
  let figure = document.querySelector<HTMLElement>(`figure[data-key="${key}"]`);
  if (!figure) {
    figure = document.createElement('figure');
    figure.dataset.key = key;
    figure.innerHTML = '<video autoplay playsinline muted></video><figcaption></figcaption>';
    $('videos').append(figure);
  }
  figure.classList.toggle('speaking', speaking);
  figure.querySelector('figcaption')!.textContent = label;
  const video = figure.querySelector('video')!;
  const current = (video.srcObject as MediaStream | null)?.getVideoTracks()[0] ?? null;
  if (track !== current) video.srcObject = track ? new MediaStream([track]) : null;
}

function render(client: RoomClient, state: RoomState, name: string): void {
  $('status').textContent = state.status;
  const keys = new Set(['self']);
  videoTile('self', `${name} (you)`, client.localTrack('camera'), state.activeSpeaker === state.selfPeerId);
  for (const consumer of Object.values(state.consumers)) {
    const peer = state.peers[consumer.peerId];
    if (consumer.kind === 'video') {
      keys.add(consumer.consumerId);
      videoTile(consumer.consumerId, peer?.displayName ?? consumer.peerId, client.remoteTrack(consumer.consumerId),
        state.activeSpeaker === consumer.peerId);
      document.querySelector<HTMLElement>(`figure[data-key="${consumer.consumerId}"]`)!.dataset.peer = consumer.peerId;
    } else if (!document.querySelector(`audio[data-key="${consumer.consumerId}"]`)) {
      const track = client.remoteTrack(consumer.consumerId);
      if (!track) continue;
      const audio = document.createElement('audio');
      audio.dataset.key = consumer.consumerId;
      audio.autoplay = true;
      audio.srcObject = new MediaStream([track]);
      $('audio').append(audio);
    }
  }
  for (const figure of document.querySelectorAll<HTMLElement>('#videos figure')) {
    if (!keys.has(figure.dataset.key!)) figure.remove();
  }
  for (const audio of document.querySelectorAll<HTMLAudioElement>('#audio audio')) {
    if (!state.consumers[audio.dataset.key!]) audio.remove();
  }
}

async function join(name: string, roomId: string): Promise<RoomClient> {
  const { token } = await rest<{ token: string }>('/auth/guest', null, { displayName: name });
  if (!roomId) roomId = (await rest<{ room: { id: string } }>('/rooms', token, { name: `${name}'s room`, isPublic: false })).room.id;
  $<HTMLAnchorElement>('room-link').textContent = `room ${roomId}`;
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: true,
    video: { width: { ideal: 320 }, height: { ideal: 180 }, frameRate: { ideal: 15 } },
  });
  const client = new RoomClient({
    url: window.location.origin,
    token,
    roomId,
    displayName: name,
    media: { mic: stream.getAudioTracks()[0] ?? null, camera: stream.getVideoTracks()[0] ?? null },
  });
  client.on('state', (state) => render(client, state, name));
  await client.join();
  return client;
}

// The class itself, to try other options from the browser console (and for tests/browser).
(window as unknown as { RoomClient: typeof RoomClient }).RoomClient = RoomClient;

const params = new URLSearchParams(window.location.search);
$<HTMLInputElement>('room').value = params.get('room') ?? '';
if (params.get('name')) $<HTMLInputElement>('name').value = params.get('name')!;

let client: RoomClient | null = null;
$('join-form').addEventListener('submit', (event) => {
  event.preventDefault();
  $<HTMLButtonElement>('join').disabled = true;
  join($<HTMLInputElement>('name').value, $<HTMLInputElement>('room').value.trim())
    .then((joined) => {
      client = joined;
      (window as unknown as { switchyard: RoomClient }).switchyard = joined;
      $<HTMLButtonElement>('leave').disabled = false;
    })
    .catch((error: unknown) => {
      $('status').textContent = `failed: ${error instanceof Error ? error.message : String(error)}`;
      $<HTMLButtonElement>('join').disabled = false;
    });
});
$('leave').addEventListener('click', () => {
  void client?.leave();
  $<HTMLButtonElement>('leave').disabled = true;
});
