"""Producers and consumers: produce, consume, pause/resume/close, preferred layers, key frames, stats.

Engine events become the contract's server events here: a closed producer's
consumers send `consumer-closed`, a paused producer `consumer-paused`, layer
switches `consumer-layers-changed`; simulcast producers hear which spatial layers
anyone consumes (`producer-layers-needed`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signaling.errors import invalid_input, limit_exceeded, not_found
from signaling.handlers import joined
from signaling.handlers.transport import own_transport
from signaling.peer import MAX_CONSUMERS, MAX_PRODUCERS
from signaling.room import producer_info
from signaling.schemas import (
    Consume,
    ConsumerRef,
    PreferredLayers,
    Produce,
    ProducerRef,
    StatsRef,
    parse,
)

if TYPE_CHECKING:
    from media.api.consumer import Consumer
    from media.api.producer import Producer
    from signaling.peer import Peer
    from signaling.server import Connection, SignalingServer


def own_producer(peer: Peer, producer_id: str) -> Producer:
    producer = peer.producers.get(producer_id)
    if producer is None:
        raise not_found("producer")
    return producer


def own_consumer(peer: Peer, consumer_id: str) -> Consumer:
    consumer = peer.consumers.get(consumer_id)
    if consumer is None:
        raise not_found("consumer")
    return consumer


async def produce(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(Produce, payload)
    peer = joined(connection)
    transport = own_transport(peer, request.transportId)
    if transport.app_data.get("direction") != "send":
        raise invalid_input("transportId is not a send transport")
    if len(peer.producers) >= MAX_PRODUCERS:
        raise limit_exceeded(f"at most {MAX_PRODUCERS} producers per peer")
    producer = await transport.produce(request.kind, request.rtpParameters, app_data=request.appData or {})
    peer.producers[producer.id] = producer
    producer.on("transportclose", lambda: peer.producers.pop(producer.id, None))
    await server.to_others(peer, "new-producer", producer_info(producer, peer))
    server.registry.producer_added(peer.room, peer, producer)
    return {"id": producer.id}


async def close_producer(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(ProducerRef, payload)
    peer = joined(connection)
    producer = own_producer(peer, request.producerId)
    del peer.producers[producer.id]
    await producer.close()
    await server.to_others(peer, "producer-closed", {"producerId": producer.id, "peerId": peer.peer_id})
    return {}


async def pause_producer(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    return await _set_producer_paused(server, connection, payload, True)


async def resume_producer(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    return await _set_producer_paused(server, connection, payload, False)


async def _set_producer_paused(server: SignalingServer, connection: Connection, payload: Any, paused: bool) -> dict:
    request = parse(ProducerRef, payload)
    peer = joined(connection)
    producer = own_producer(peer, request.producerId)
    await (producer.pause() if paused else producer.resume())
    event = "producer-paused" if paused else "producer-resumed"
    await server.to_others(peer, event, {"producerId": producer.id, "peerId": peer.peer_id})
    return {}


async def consume(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(Consume, payload)
    peer = joined(connection)
    transport = own_transport(peer, request.transportId)
    if transport.app_data.get("direction") != "recv":
        raise invalid_input("transportId is not a receive transport")
    owner = peer.room.producer_owner(request.producerId)
    if owner is None and server.cascade is None:
        raise not_found("producer")
    if len(peer.consumers) >= MAX_CONSUMERS:
        raise limit_exceeded(f"at most {MAX_CONSUMERS} consumers per peer")
    if owner is None:  # a producer of a peer on another node: piped here first (signaling/cascade.py)
        await server.cascade.make_consumable(peer.room, request.producerId)
    consumer = await transport.consume(request.producerId, request.rtpCapabilities, paused=request.paused)
    peer.consumers[consumer.id] = consumer
    _relay_consumer_events(server, peer, owner, consumer)
    if owner is not None:
        await announce_layers_needed(server, owner, consumer.producer_id)
    return {
        "id": consumer.id,
        "producerId": consumer.producer_id,
        "kind": consumer.kind,
        "rtpParameters": consumer.rtp_parameters,
        "type": consumer.type,
        "producerPaused": consumer.producer_paused,
    }


def _relay_consumer_events(server: SignalingServer, peer: Peer, owner: Peer | None, consumer: Consumer) -> None:
    ids = {"consumerId": consumer.id}

    def closed_by_producer() -> None:
        peer.consumers.pop(consumer.id, None)
        server.emit_later("consumer-closed", {**ids, "producerId": consumer.producer_id}, to=peer.sid)

    def layers_changed(layers: dict | None) -> None:
        layers = layers or {}
        server.emit_later("consumer-layers-changed", {
            **ids, "spatialLayer": layers.get("spatialLayer"), "temporalLayer": layers.get("temporalLayer")},
            to=peer.sid)

    consumer.on("producerclose", closed_by_producer)
    consumer.on("transportclose", lambda: peer.consumers.pop(consumer.id, None))
    consumer.on("producerpause", lambda: server.emit_later("consumer-paused", ids, to=peer.sid))
    consumer.on("producerresume", lambda: server.emit_later("consumer-resumed", ids, to=peer.sid))
    consumer.on("layerschange", layers_changed)


async def announce_layers_needed(server: SignalingServer, owner: Peer, producer_id: str) -> None:
    """Tell a simulcast producer's peer the layers 0..max that anyone prefers (PROTOCOL.md §4)."""
    producer = owner.producers.get(producer_id)
    if producer is None or producer.type != "simulcast":
        return
    preferred = [c.preferred_layers["spatialLayer"] for c in producer.consumers.values()
                 if not c.closed and c.preferred_layers]
    if any(c.type == "pipe" and not c.closed for c in producer.consumers.values()):
        # a pipe (to another node) carries every layer: the consumers over there choose theirs
        preferred.append(len(producer.rtp_parameters["encodings"]) - 1)
    # never an empty list: with nobody consuming, the lowest layer stays on for the next joiner
    layers = list(range(max(preferred, default=0) + 1))
    if owner.layers_needed.get(producer_id) != layers:
        owner.layers_needed[producer_id] = layers
        await server.sio.emit("producer-layers-needed", {"producerId": producer_id, "spatialLayers": layers},
                              to=owner.sid)


def consumer_action(method: str):
    """resumeConsumer / pauseConsumer / requestConsumerKeyFrame: one call on the caller's own consumer."""
    async def act(server: SignalingServer, connection: Connection, payload: Any) -> dict:
        request = parse(ConsumerRef, payload)
        await getattr(own_consumer(joined(connection), request.consumerId), method)()
        return {}
    return act


async def set_consumer_preferred_layers(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(PreferredLayers, payload)
    peer = joined(connection)
    consumer = own_consumer(peer, request.consumerId)
    await consumer.set_preferred_layers(request.spatialLayer, request.temporalLayer)
    owner = peer.room.producer_owner(consumer.producer_id)
    if owner is not None:
        await announce_layers_needed(server, owner, consumer.producer_id)
    return {}


async def get_stats(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(StatsRef, payload)
    peer = joined(connection)
    target = (peer.transports.get(request.id) or peer.producers.get(request.id)
              or peer.consumers.get(request.id) or peer.data_producers.get(request.id)
              or peer.data_consumers.get(request.id))
    if target is None:
        raise not_found("transport, producer, consumer, data producer or data consumer")
    return {"stats": await target.get_stats()}


HANDLERS = {
    "produce": produce,
    "closeProducer": close_producer,
    "pauseProducer": pause_producer,
    "resumeProducer": resume_producer,
    "consume": consume,
    "resumeConsumer": consumer_action("resume"),
    "pauseConsumer": consumer_action("pause"),
    "setConsumerPreferredLayers": set_consumer_preferred_layers,
    "requestConsumerKeyFrame": consumer_action("request_key_frame"),
    "getStats": get_stats,
}
