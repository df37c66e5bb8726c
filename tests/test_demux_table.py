"""The demux stage's first-byte classes (RFC 7983) and the C hash table behind its lookups."""

import random

import pytest
from fastpath.demux import PacketClass, address_key_of, classify
from fastpath.table import KeyTable


@pytest.mark.parametrize(
    "first,expected",
    [
        (0, PacketClass.PACKET_STUN),
        (3, PacketClass.PACKET_STUN),
        (16, PacketClass.PACKET_ZRTP),
        (20, PacketClass.PACKET_DTLS),
        (63, PacketClass.PACKET_DTLS),
        (64, PacketClass.PACKET_TURN_CHANNEL),
        (128, PacketClass.PACKET_RTP),
        (191, PacketClass.PACKET_RTP),
        (192, PacketClass.PACKET_UNKNOWN),
        (100, PacketClass.PACKET_UNKNOWN),
    ],
)
def test_classify_by_first_byte(first, expected):
    assert classify(bytes([first, 0, 0])) == expected


def test_classify_empty_is_unknown():
    assert classify(b"") == PacketClass.PACKET_UNKNOWN


def test_address_keys_distinguish_family_host_and_port():
    keys = {
        address_key_of(("127.0.0.1", 5000)),
        address_key_of(("127.0.0.1", 5001)),
        address_key_of(("127.0.0.2", 5000)),
        address_key_of(("::1", 5000)),
        address_key_of(("::2", 5000)),
    }
    assert len(keys) == 5
    assert address_key_of(("127.0.0.1", 5000)) == address_key_of(("127.0.0.1", 5000))


def test_address_key_rejects_bad_input():
    with pytest.raises(ValueError):
        address_key_of(("127.0.0.1", 70000))
    with pytest.raises(OSError):
        address_key_of(("not-an-ip", 1))


def test_table_matches_a_dict_through_growth_and_deletes():
    table = KeyTable()
    model: dict[tuple[int, int, int], int] = {}
    rng = random.Random(7)
    for step in range(20000):
        key = (rng.randrange(2000), rng.randrange(3), rng.randrange(5))
        if rng.random() < 0.35 and model:
            victim = rng.choice(list(model))
            assert table.delete(*victim)
            del model[victim]
        else:
            model[key] = step
            table.put(*key, step)
        if step % 997 == 0:
            for k, v in model.items():
                assert table.get(*k) == v
    assert len(table) == len(model)
    for k, v in model.items():
        assert table.get(*k) == v
    assert table.get(99999, 0, 0) == -1
    assert not table.delete(99999, 0, 0)


def test_table_refuses_negative_values():
    with pytest.raises(ValueError):
        KeyTable().put(1, 2, 3, -1)
