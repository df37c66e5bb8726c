"""Signaling without media: the REST and Socket.IO calls of PROTOCOL.md as typed asyncio methods.

`Room` (room.py) is built on this class; use it directly for what a Room does not wrap.

    client = SwitchyardClient("http://localhost:3000")
    await client.guest("Ada")
    room = await client.create_room("standup")
    await client.connect()
    joined = await client.join(room["id"])
    async for event, data in client.events():   # or client.on("chat", callback)
        ...

Requests raise `SignalingError` (code, message) for `ok: false` acks and `ApiError` for REST
errors. A `join` answered with `wrong_node` reconnects to the hosting node and joins there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import socketio

REQUEST_TIMEOUT = 15.0
SERVER_EVENTS = (
    "user-joined", "user-left", "new-producer", "producer-closed", "producer-paused", "producer-resumed",
    "consumer-closed", "consumer-paused", "consumer-resumed", "consumer-layers-changed", "chat",
    "active-speaker", "audio-mute", "video-mute", "raised-hand", "room-closed", "producer-layers-needed",
    "new-data-producer", "data-producer-closed", "data-consumer-closed",
)
SERVER_EVENTS += ("recording-changed",)  # a room's recording started or stopped (docs/rest.md)


class ApiError(Exception):
    """A REST error: `{"error": {"code", "message"}}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class SignalingError(Exception):
    """A Socket.IO request answered `ok: false`; `details` holds extra fields such as `url`."""

    def __init__(self, code: str, message: str, details: dict | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details or {}


class SwitchyardClient:
    """One user's REST session and Socket.IO connection to a Switchyard node."""

    def __init__(self, base_url: str, token: str | None = None, handle_sigint: bool = True,
                 queue_events: bool = True):
        self.base_url = base_url.rstrip("/")
        self.token = token
        # python-socketio's own Ctrl-C handling (disconnect, cancel every task); off for programs
        # that handle SIGINT themselves, such as the load test
        self.handle_sigint = handle_sigint
        self.user: dict | None = None
        self.sio: socketio.AsyncClient | None = None
        self._http: aiohttp.ClientSession | None = None
        self._listeners: dict[str, list[Callable[[Any], Any]]] = {}
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        # events() and wait_for() read this queue; a program that only uses on() turns it off, or
        # the queue would grow for as long as the connection lives
        self.queue_events = queue_events

    # ---- REST ------------------------------------------------------------------------------------

    async def _rest(self, method: str, path: str, body: dict | None = None, params: dict | None = None) -> Any:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        async with self._http.request(method, self.base_url + path, json=body, params=params,
                                      headers=headers) as response:
            if response.status == 204:
                return None
            data = await response.json(content_type=None)
            if response.status >= 400:
                error = (data or {}).get("error", {})
                raise ApiError(response.status, error.get("code", "http_error"), error.get("message", ""))
            return data

    async def _signed_in(self, answer: dict) -> dict:
        self.token = answer["token"]
        self.user = answer["user"]
        return self.user

    async def register(self, email: str, password: str, display_name: str) -> dict:
        return await self._signed_in(await self._rest(
            "POST", "/api/auth/register", {"email": email, "password": password, "displayName": display_name}))

    async def login(self, email: str, password: str) -> dict:
        return await self._signed_in(await self._rest("POST", "/api/auth/login",
                                                      {"email": email, "password": password}))

    async def guest(self, display_name: str) -> dict:
        return await self._signed_in(await self._rest("POST", "/api/auth/guest", {"displayName": display_name}))

    async def sign_in(self, display_name: str | None = None, email: str | None = None,
                      password: str | None = None) -> dict:
        """The web app's sign-in: email and password when given, else a guest with `display_name`."""
        if email is not None and password is not None:
            return await self.login(email, password)
        if not display_name:
            raise ValueError("sign_in needs a display_name (guest) or an email and password")
        return await self.guest(display_name)

    async def me(self) -> dict:
        return (await self._rest("GET", "/api/me"))["user"]

    async def create_room(self, name: str, is_public: bool = True, max_participants: int | None = None) -> dict:
        body: dict[str, Any] = {"name": name, "isPublic": is_public}
        if max_participants is not None:
            body["maxParticipants"] = max_participants
        return (await self._rest("POST", "/api/rooms", body))["room"]

    async def list_rooms(self) -> list[dict]:
        return (await self._rest("GET", "/api/rooms"))["rooms"]

    async def get_room(self, room_id: str) -> dict:
        return (await self._rest("GET", f"/api/rooms/{room_id}"))["room"]

    async def delete_room(self, room_id: str) -> None:
        await self._rest("DELETE", f"/api/rooms/{room_id}")

    async def messages(self, room_id: str, before: str | None = None, limit: int | None = None) -> list[dict]:
        params = {k: str(v) for k, v in (("before", before), ("limit", limit)) if v is not None}
        return (await self._rest("GET", f"/api/rooms/{room_id}/messages", params=params))["messages"]

    # ---- Socket.IO -------------------------------------------------------------------------------

    async def connect(self, base_url: str | None = None) -> None:
        """Open the signaling connection (to this node, or another node's base URL)."""
        if base_url is not None:
            self.base_url = base_url.rstrip("/")
        if self.sio is not None:
            await self.sio.disconnect()
        self.sio = socketio.AsyncClient(reconnection=False, handle_sigint=self.handle_sigint)
        for event in SERVER_EVENTS:
            self.sio.on(event, self._handler(event))
        self.sio.on("disconnect", self._handler("disconnect"))
        refusals: list = []
        self.sio.on("connect_error", refusals.append)
        try:
            await self.sio.connect(self.base_url, auth={"token": self.token}, socketio_path="socket.io",
                                   transports=["websocket"], wait_timeout=10)
        except socketio.exceptions.ConnectionError as exc:
            message = refusals[0].get("message") if refusals and isinstance(refusals[0], dict) else str(exc)
            raise SignalingError("unauthorized" if message == "unauthorized" else "connect_error",
                                 str(message)) from None

    def _handler(self, event: str) -> Callable:
        async def handle(data: Any = None) -> None:
            if self.queue_events:
                self._queue.put_nowait((event, data))
            for callback in list(self._listeners.get(event, [])):
                result = callback(data)
                if asyncio.iscoroutine(result):
                    await result
        return handle

    def on(self, event: str, callback: Callable[[Any], Any]) -> None:
        """Call `callback(data)` for every `event` from the server."""
        self._listeners.setdefault(event, []).append(callback)

    async def events(self) -> AsyncIterator[tuple[str, Any]]:
        """Every server event, in arrival order, as (event, data)."""
        while True:
            yield await self._queue.get()

    async def wait_for(self, event: str, predicate: Callable[[Any], bool] | None = None,
                       timeout: float = 10.0) -> Any:
        """The next `event` (matching `predicate`); events skipped over are dropped from events()."""
        async def scan() -> Any:
            while True:
                name, data = await self._queue.get()
                if name == event and (predicate is None or predicate(data)):
                    return data
        return await asyncio.wait_for(scan(), timeout)

    async def request(self, event: str, payload: Any = None, timeout: float = REQUEST_TIMEOUT) -> dict:
        """Send a request with an ack; `data` of `ok: true`, else SignalingError."""
        if self.sio is None or not self.sio.connected:
            raise SignalingError("not_connected", "call connect() first")
        reply = await self.sio.call(event, payload if payload is not None else {}, timeout=timeout)
        if not isinstance(reply, dict) or "ok" not in reply:
            raise SignalingError("invalid_reply", f"unexpected ack {reply!r}")
        if reply["ok"]:
            return reply.get("data") or {}
        error = dict(reply.get("error") or {})
        code, message = error.pop("code", "error"), error.pop("message", "")
        raise SignalingError(code, message, error)

    async def join(self, room_id: str, display_name: str | None = None) -> dict:
        payload = {"roomId": room_id, **({"displayName": display_name} if display_name else {})}
        try:
            return await self.request("join", payload)
        except SignalingError as exc:
            if exc.code != "wrong_node" or not exc.details.get("url"):
                raise
            hosting_node = exc.details["url"]
        await self.connect(hosting_node)
        return await self.request("join", payload)

    async def leave(self) -> dict:
        return await self.request("leave")

    async def create_webrtc_transport(self, direction: str, force_tcp: bool = False,
                                      sctp_capabilities: dict | None = None) -> dict:
        """sctp_capabilities (mediasoup's {numStreams: {OS, MIS}}): DataChannels, answered with sctpParameters."""
        payload: dict[str, Any] = {"direction": direction, "forceTcp": force_tcp}
        if sctp_capabilities is not None:
            payload["sctpCapabilities"] = sctp_capabilities
        return await self.request("createWebRtcTransport", payload)

    async def connect_webrtc_transport(self, transport_id: str, dtls_parameters: dict) -> dict:
        return await self.request("connectWebRtcTransport",
                                  {"transportId": transport_id, "dtlsParameters": dtls_parameters})

    async def restart_ice(self, transport_id: str) -> dict:
        return (await self.request("restartIce", {"transportId": transport_id}))["iceParameters"]

    async def produce(self, transport_id: str, kind: str, rtp_parameters: dict, app_data: dict | None = None) -> str:
        payload = {"transportId": transport_id, "kind": kind, "rtpParameters": rtp_parameters,
                   "appData": app_data or {}}
        return (await self.request("produce", payload))["id"]

    async def close_producer(self, producer_id: str) -> None:
        await self.request("closeProducer", {"producerId": producer_id})

    async def pause_producer(self, producer_id: str) -> None:
        await self.request("pauseProducer", {"producerId": producer_id})

    async def resume_producer(self, producer_id: str) -> None:
        await self.request("resumeProducer", {"producerId": producer_id})

    async def consume(self, transport_id: str, producer_id: str, rtp_capabilities: dict,
                      paused: bool = True) -> dict:
        return await self.request("consume", {"transportId": transport_id, "producerId": producer_id,
                                              "rtpCapabilities": rtp_capabilities, "paused": paused})

    async def resume_consumer(self, consumer_id: str) -> None:
        await self.request("resumeConsumer", {"consumerId": consumer_id})

    async def pause_consumer(self, consumer_id: str) -> None:
        await self.request("pauseConsumer", {"consumerId": consumer_id})

    async def set_consumer_preferred_layers(self, consumer_id: str, spatial_layer: int,
                                            temporal_layer: int | None = None) -> None:
        payload: dict[str, Any] = {"consumerId": consumer_id, "spatialLayer": spatial_layer}
        if temporal_layer is not None:
            payload["temporalLayer"] = temporal_layer
        await self.request("setConsumerPreferredLayers", payload)

    async def request_consumer_key_frame(self, consumer_id: str) -> None:
        await self.request("requestConsumerKeyFrame", {"consumerId": consumer_id})

    async def produce_data(self, transport_id: str, sctp_stream_parameters: dict, label: str = "",
                           protocol: str = "", app_data: dict | None = None) -> str:
        payload = {"transportId": transport_id, "sctpStreamParameters": sctp_stream_parameters,
                   "label": label, "protocol": protocol, "appData": app_data or {}}
        return (await self.request("produceData", payload))["id"]

    async def close_data_producer(self, data_producer_id: str) -> None:
        await self.request("closeDataProducer", {"dataProducerId": data_producer_id})

    async def consume_data(self, data_producer_id: str, transport_id: str | None = None) -> dict:
        """{id, dataProducerId, sctpStreamParameters, label, protocol, appData}: open a negotiated channel with these."""
        payload = {"dataProducerId": data_producer_id, **({"transportId": transport_id} if transport_id else {})}
        return await self.request("consumeData", payload)

    async def close_data_consumer(self, data_consumer_id: str) -> None:
        await self.request("closeDataConsumer", {"dataConsumerId": data_consumer_id})

    async def get_stats(self, object_id: str) -> list[dict]:
        return (await self.request("getStats", {"id": object_id}))["stats"]

    async def chat(self, text: str) -> dict:
        return (await self.request("chat", {"text": text}))["message"]

    async def audio_mute(self, muted: bool) -> None:
        await self.request("audio-mute", {"muted": muted})

    async def video_mute(self, muted: bool) -> None:
        await self.request("video-mute", {"muted": muted})

    async def raise_hand(self, raised: bool) -> None:
        await self.request("raise-hand", {"raised": raised})

    async def close(self) -> None:
        if self.sio is not None:
            await self.sio.disconnect()
            self.sio = None
        if self._http is not None:
            await self._http.close()
            self._http = None
