"""DataChannels: produceData, consumeData, closeDataProducer, closeDataConsumer (mediasoup's data API over SCTP).

A data producer is announced to the others as `new-data-producer`; closing it
(or its peer leaving) sends `data-producer-closed` to the others and
`data-consumer-closed` to each peer that consumed it. The streams are
negotiated out of band: the client names its data producer's stream, the
server names each data consumer's (RFC 8831 section 6.5, as mediasoup does).
A data producer of another worker of the room is piped to the consumer's
router first (signaling/placement.py), one of another node to this node
(signaling/cascade_data.py); its messages are relayed, its events are the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from signaling.errors import invalid_input, limit_exceeded, not_found
from signaling.handlers import joined
from signaling.handlers.transport import own_transport
from signaling.peer import MAX_DATA_CONSUMERS, MAX_DATA_PRODUCERS
from signaling.room import data_producer_info
from signaling.schemas import ConsumeData, DataConsumerRef, DataProducerRef, ProduceData, parse

if TYPE_CHECKING:
    from media.api.data_consumer import DataConsumer
    from media.api.webrtc_transport import WebRtcTransport
    from signaling.peer import Peer
    from signaling.server import Connection, SignalingServer


def _sctp_transport(peer: Peer, transport_id: str | None, direction: str) -> WebRtcTransport:
    """The caller's transport of that direction with SCTP: the one named, else the first such."""
    if transport_id is None:
        for transport in peer.transports.values():
            if transport.app_data.get("direction") == direction and transport.sctp_parameters:
                return transport
        raise not_found(f"{direction} transport with sctpParameters")
    transport = own_transport(peer, transport_id)
    if transport.app_data.get("direction") != direction:
        raise invalid_input(f"transportId is not a {'send' if direction == 'send' else 'receive'} transport")
    if not transport.sctp_parameters:
        raise invalid_input("transportId has no SCTP: create it with sctpCapabilities")
    return transport


async def produce_data(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(ProduceData, payload)
    peer = joined(connection)
    transport = _sctp_transport(peer, request.transportId, "send")
    if len(peer.data_producers) >= MAX_DATA_PRODUCERS:
        raise limit_exceeded(f"at most {MAX_DATA_PRODUCERS} data producers per peer")
    producer = await transport.produce_data(request.sctpStreamParameters, request.label, request.protocol,
                                            app_data=request.appData or {})
    peer.data_producers[producer.id] = producer
    producer.on("transportclose", lambda: peer.data_producers.pop(producer.id, None))
    await server.to_others(peer, "new-data-producer", data_producer_info(producer, peer))
    return {"id": producer.id}


async def close_data_producer(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(DataProducerRef, payload)
    peer = joined(connection)
    producer = peer.data_producers.pop(request.dataProducerId, None)
    if producer is None:
        raise not_found("data producer")
    await producer.close()
    await server.to_others(peer, "data-producer-closed", {"dataProducerId": producer.id, "peerId": peer.peer_id})
    return {}


async def consume_data(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(ConsumeData, payload)
    peer = joined(connection)
    owner = peer.room.data_producer_owner(request.dataProducerId)
    if owner is None and server.cascade is None:
        raise not_found("data producer")
    transport = _sctp_transport(peer, request.transportId, "recv")
    if len(peer.data_consumers) >= MAX_DATA_CONSUMERS:
        raise limit_exceeded(f"at most {MAX_DATA_CONSUMERS} data consumers per peer")
    if owner is None:  # a data producer of a peer on another node: piped here first (signaling/cascade_data.py)
        producer = await server.cascade.make_data_consumable(peer.room, request.dataProducerId)
    else:
        producer = owner.data_producers[request.dataProducerId]
    # a data producer of another router of the room (signaling.placement) is piped to this one first
    await server.registry.placement.pipe_data_for(producer, transport.router)
    consumer = await transport.consume_data(request.dataProducerId)
    peer.data_consumers[consumer.id] = consumer
    _relay_data_consumer_events(server, peer, consumer)
    return {
        "id": consumer.id,
        "dataProducerId": consumer.data_producer_id,
        "sctpStreamParameters": consumer.sctp_stream_parameters,
        "label": consumer.label,
        "protocol": consumer.protocol,
        "appData": consumer.data_producer.app_data,
    }


def _relay_data_consumer_events(server: SignalingServer, peer: Peer, consumer: DataConsumer) -> None:
    def closed_by_producer() -> None:
        peer.data_consumers.pop(consumer.id, None)
        server.emit_later("data-consumer-closed", {"dataConsumerId": consumer.id,
                                                   "dataProducerId": consumer.data_producer_id}, to=peer.sid)

    consumer.on("dataproducerclose", closed_by_producer)
    consumer.on("transportclose", lambda: peer.data_consumers.pop(consumer.id, None))


async def close_data_consumer(server: SignalingServer, connection: Connection, payload: Any) -> dict:
    request = parse(DataConsumerRef, payload)
    peer = joined(connection)
    consumer = peer.data_consumers.pop(request.dataConsumerId, None)
    if consumer is None:
        raise not_found("data consumer")
    await consumer.close()
    return {}


HANDLERS = {
    "produceData": produce_data,
    "closeDataProducer": close_data_producer,
    "consumeData": consume_data,
    "closeDataConsumer": close_data_consumer,
}
