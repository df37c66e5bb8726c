"""A STUN Binding request (RFC 8489) over UDP, TCP or TLS: is a TURN server answering on that port?

`switchyard serve` asks this of coturn on every transport it was started with before it says it is
ready (coturn logs a port it cannot bind and runs on without it), and again after each restart.
"""

from __future__ import annotations

import asyncio
import ssl
import struct

from aioice import stun

HEADER = 20  # STUN header: type, length, magic cookie, transaction id


class BindingError(Exception):
    """No valid Binding response: the reason, in a line."""


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue(maxsize=16)

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.received.full():
            self.received.put_nowait(data)


def insecure_tls() -> ssl.SSLContext:
    """Readiness only: any certificate will do (the operator's certificate names the public host)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def check_response(data: bytes, request: stun.Message) -> tuple[str, int]:
    try:
        response = stun.parse_message(data)
    except ValueError as exc:
        raise BindingError(f"not a STUN message: {exc}") from None
    if response.transaction_id != request.transaction_id or response.message_class != stun.Class.RESPONSE:
        raise BindingError(f"unexpected answer {response.message_method!r} {response.message_class!r}")
    mapped = response.attributes.get("XOR-MAPPED-ADDRESS")
    if mapped is None:
        raise BindingError("Binding response without XOR-MAPPED-ADDRESS")
    return mapped


async def read_stun(reader: asyncio.StreamReader) -> bytes:
    """One STUN message from a stream (RFC 8656 section 3.1: back to back, length in the header)."""
    header = await reader.readexactly(HEADER)
    (length,) = struct.unpack("!H", header[2:4])
    return header + await reader.readexactly(length)


async def binding(host: str, port: int, transport: str, timeout: float = 2.0) -> tuple[str, int]:
    """The XOR-MAPPED-ADDRESS the server at host:port sees us at, over `transport` (udp, tcp, tls)."""
    request = stun.Message(stun.Method.BINDING, stun.Class.REQUEST)
    request.add_fingerprint()
    data = bytes(request)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            if transport == "udp":
                sock, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=(host, port))
                try:
                    # RFC 8489 section 6.2.1: retransmit over UDP; a few tries within the timeout
                    for _ in range(max(1, int(timeout / 0.25))):
                        sock.sendto(data)
                        try:
                            answer = await asyncio.wait_for(protocol.received.get(), 0.25)
                        except TimeoutError:
                            continue
                        return check_response(answer, request)
                    raise TimeoutError
                finally:
                    sock.close()
            reader, writer = await asyncio.open_connection(
                host, port, ssl=insecure_tls() if transport == "tls" else None)
            try:
                writer.write(data)
                return check_response(await read_stun(reader), request)
            finally:
                writer.close()
    except TimeoutError:
        raise BindingError(f"no STUN answer over {transport} from {host}:{port} in {timeout:.0f} s") from None
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
        raise BindingError(f"STUN over {transport} to {host}:{port} failed: {exc}") from None
