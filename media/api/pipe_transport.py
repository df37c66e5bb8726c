"""Pipe transports: a producer of one router consumed on another (mediasoup's PipeTransport, pipeToRouter).

A pipe is a pair of plain transports, one in each router, each connected to the other's worker
port on loopback (plain RTP by default, SRTP with each side's signalled key when asked). On the
first router a *pipe consumer* forwards every encoding of the producer, each under its own SSRC;
on the second a *pipe producer* with the same id and those encodings as its rtpParameters receives
them, so the second router's consumers consume it like any local producer and still pick their
simulcast layer. Closing, pausing and resuming follow mediasoup's pipeToRouter wiring; key frame
requests cross the pipe as RTCP PLI (RFC 4585 6.3.1) to the pipe consumer's SSRC, which the first
worker relays to the producer.

Two routers are piped only across two different workers (a worker finds a transport by its
remote address on its one port); in each worker the pipes to one other worker share a Forwarder
slot (media/engine/pipe_transport.py), so many router pairs can be piped between the same two
workers. They are all plain RTP or all SRTP (each worker then keys every SRTP pipe end with one
key of its own): a pipe of the other kind between the same two workers is refused.
"""

from __future__ import annotations

import asyncio
import copy
import secrets
import uuid
from typing import TYPE_CHECKING, Any

from media.api.consumer import Consumer
from media.api.errors import InvalidInputError, InvalidStateError, NotFoundError, worker_request
from media.api.plain_transport import PlainTransport
from media.ortc.capabilities import MID_URI, REPAIRED_RID_URI, RID_URI, TRANSPORT_WIDE_CC_URI
from media.ortc.codecs import is_rtx_codec

if TYPE_CHECKING:
    from media.api.producer import Producer
    from media.api.router import Router

# Not carried on a pipe: MID and RIDs name nothing there (SSRCs do), and the pipe has no
# congestion control of its own (loopback), so neither transport-wide sequence numbers nor REMB.
PIPE_DROPPED_EXTENSIONS = {MID_URI, RID_URI, REPAIRED_RID_URI, TRANSPORT_WIDE_CC_URI}
# Key frame requests only: without RTX (mediasoup's default enableRtx: false) there is no NACK.
PIPE_FEEDBACK = ({"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"})


def pipe_rtp_parameters(consumable: dict[str, Any]) -> dict[str, Any]:
    """The pipe's rtpParameters: the producer's consumable ones, every encoding with an SSRC of its own."""
    params = copy.deepcopy(consumable)
    params["codecs"] = [codec for codec in params["codecs"] if not is_rtx_codec(codec)]
    for codec in params["codecs"]:
        codec["rtcpFeedback"] = [
            fb for fb in codec.get("rtcpFeedback") or []
            if {"type": fb.get("type"), "parameter": fb.get("parameter")} in PIPE_FEEDBACK
        ]
    params["headerExtensions"] = [
        ext for ext in params["headerExtensions"] if ext["uri"] not in PIPE_DROPPED_EXTENSIONS
    ]
    used: set[int] = set()
    for encoding in params["encodings"]:
        encoding.pop("rtx", None)
        ssrc = 0
        while ssrc == 0 or ssrc in used:
            ssrc = secrets.randbits(32)
        used.add(ssrc)
        encoding["ssrc"] = ssrc
    params.pop("mid", None)
    return params


class PipeTransport(PlainTransport):
    """A plain transport that is one end of a pipe; `peer` is the other end, in the other router."""

    peer: PipeTransport | None = None

    async def consume_pipe(self, producer: Producer) -> Consumer:
        """A pipe consumer of the producer: all its encodings, under the pipe's own SSRCs."""
        self._check_open()
        params = pipe_rtp_parameters(producer.consumable_rtp_parameters)
        consumer_id = str(uuid.uuid4())
        await worker_request(self.worker, "transport.consume", {
            "transportId": self.id,
            "consumerId": consumer_id,
            "producerId": producer.id,
            "kind": producer.kind,
            "rtpParameters": params,
            "type": "pipe",
            "paused": False,
            "producerPaused": producer.paused,
        })
        self._check_open()
        if producer.closed:
            raise InvalidStateError(f"producer {producer.id} closed while it was being piped")
        consumer = Consumer(self, producer, consumer_id, params, "pipe", False, None, {})
        self.consumers[consumer_id] = consumer
        producer.consumers[consumer_id] = consumer
        self.router._add_target(consumer)
        return consumer


async def create_pipe_pair(local: Router, remote: Router, enable_srtp: bool) -> tuple[PipeTransport, PipeTransport]:
    """Two pipe transports, one per router, each connected to the other's worker port."""
    ends: list[PipeTransport] = []
    try:
        for router in (local, remote):
            ends.append(await router.create_plain_transport(enable_srtp=enable_srtp,
                                                            transport_class=PipeTransport))
        a, b = ends
        # The worker's listening address, not the announced one: the pipe stays on this host.
        await a.connect(ip=_pipe_ip(remote), port=b.tuple["localPort"], srtp_parameters=b.srtp_parameters)
        await b.connect(ip=_pipe_ip(local), port=a.tuple["localPort"], srtp_parameters=a.srtp_parameters)
    except BaseException:
        for end in ends:
            await end.close()
        raise
    a.peer, b.peer = b, a
    for end in (a, b):
        for event in ("@close", "routerclose"):
            end.on(event, lambda *_, end=end: _end_closed(end))
    return a, b


def _end_closed(end: PipeTransport) -> None:
    """One end of a pipe closed: the pair is forgotten and the other end closed (its pipe producers and
    consumers close with it, and through _wire their partners on this side)."""
    peer = end.peer
    if peer is None:
        return
    end.router._forget_pipe(peer.router.id)
    peer.router._forget_pipe(end.router.id)
    if not peer.closed:
        task = asyncio.ensure_future(peer.close())
        peer.router._pipe_tasks.add(task)
        task.add_done_callback(peer.router._pipe_tasks.discard)


def _pipe_ip(router: Router) -> str:
    ip = router.worker.settings.rtc_ip
    return "127.0.0.1" if ip in ("0.0.0.0", "") else "::1" if ip == "::" else ip


def check_pipe_ends(source: Router, target: object) -> None:
    """What every pipeToRouter refuses: a target that is not an open router of another worker."""
    from media.api.router import Router  # the module imports this one

    if not isinstance(target, Router):
        raise InvalidInputError("router must be a Router")
    source._check_open()
    target._check_open()
    if target is source or target.worker is source.worker:
        raise InvalidStateError("a pipe joins routers of two different workers")


async def pipe_to_router(
    source: Router, producer_id: str, target: Router, enable_srtp: bool = False
) -> tuple[Consumer, Producer]:
    """mediasoup's router.pipeToRouter({producerId, router}): (pipe consumer on source, pipe producer on target)."""
    check_pipe_ends(source, target)
    producer = source.producers.get(producer_id) if isinstance(producer_id, str) else None
    if producer is None:
        raise NotFoundError(f"producer {producer_id!r} not found")
    if producer_id in target.producers:
        raise InvalidStateError(f"producer {producer_id} is already piped to router {target.id}")
    local, remote = await source._pipe_pair(target, enable_srtp)
    pipe_consumer = await local.consume_pipe(producer)
    try:
        pipe_producer = await remote.produce(
            producer.kind, pipe_consumer.rtp_parameters, paused=producer.paused,
            app_data=copy.deepcopy(producer.app_data), producer_id=producer.id,
        )
    except BaseException:
        await pipe_consumer.close()
        raise
    _wire(pipe_consumer, pipe_producer, source._pipe_tasks)
    return pipe_consumer, pipe_producer


def _wire(pipe_consumer: Consumer, pipe_producer: Producer, tasks: set[asyncio.Task]) -> None:
    """Either end closing closes the other; the producer's pause state travels to the pipe producer."""

    def run(coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    lock = asyncio.Lock()

    async def follow_pause() -> None:
        # one request at a time, each for the producer's latest state (a quick pause and resume
        # must not end paused)
        async with lock:
            paused = pipe_consumer.producer_paused
            if not pipe_producer.closed and pipe_producer.paused != paused:
                await (pipe_producer.pause() if paused else pipe_producer.resume())

    for event in ("@close", "producerclose", "transportclose"):
        pipe_consumer.on(event, lambda *_: run(pipe_producer.close()))
    for event in ("@close", "transportclose"):
        pipe_producer.on(event, lambda *_: run(pipe_consumer.close()))
    for event in ("producerpause", "producerresume"):
        pipe_consumer.on(event, lambda *_: run(follow_pause()))
