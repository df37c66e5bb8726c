"""Cost of SRTP protect per 1,200-byte RTP packet: libsrtp from C vs pylibsrtp from Python (RFC 3711)."""

import json
import os
import platform
import statistics
import struct
import time
from pathlib import Path

import pylibsrtp

from fastpath import srtp

PACKET_SIZE = 1200
C_LOOP_PACKETS = 200_000
PYTHON_PACKETS = 20_000
RUNS = 5
SSRC = 0x5EED5EED
RESULTS = Path(__file__).resolve().parent / "results" / "srtp.json"

PYLIBSRTP_PROFILES = {
    "SRTP_AES128_CM_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "SRTP_AES128_CM_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "SRTP_AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "SRTP_AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}


def rtp_packets(count):
    """count RTP packets of PACKET_SIZE bytes with increasing seq (RFC 3550 5.1)."""
    payload = os.urandom(PACKET_SIZE - 12)
    return [
        struct.pack("!BBHII", 0x80, 96, seq & 0xFFFF, seq * 3000, SSRC) + payload
        for seq in range(count)
    ]


def time_python_loop(protect, packets):
    """Seconds for protect() over every packet, called from Python."""
    started = time.perf_counter()
    for packet in packets:
        protect(packet)
    return time.perf_counter() - started


def ns_per_packet(profile, packets):
    """Median and best ns per protect, for each way of calling libsrtp."""
    key = os.urandom(sum(srtp.profile_key_lengths(profile)))
    samples = {"c_loop": [], "pylibsrtp": [], "ours_from_python": []}
    for _ in range(RUNS):
        samples["c_loop"].append(
            srtp.bench_protect(profile, C_LOOP_PACKETS, PACKET_SIZE) / C_LOOP_PACKETS
        )
        # Fresh sessions each run, so every seq is new to the sender.
        policy = pylibsrtp.Policy(
            key=key,
            ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=PYLIBSRTP_PROFILES[profile],
        )
        theirs = pylibsrtp.Session(policy)
        samples["pylibsrtp"].append(time_python_loop(theirs.protect, packets) / len(packets))
        ours = srtp.SrtpSession(profile, key, "outbound")
        samples["ours_from_python"].append(time_python_loop(ours.protect, packets) / len(packets))
    return {
        way: {"median_ns": statistics.median(values) * 1e9, "best_ns": min(values) * 1e9}
        for way, values in samples.items()
    }


def main():
    packets = rtp_packets(PYTHON_PACKETS)
    started = time.perf_counter()
    results = {profile: ns_per_packet(profile, packets) for profile in srtp.PROFILES}
    elapsed = time.perf_counter() - started

    print(f"SRTP protect, {PACKET_SIZE}-byte RTP, {srtp.libsrtp_version()}, median of {RUNS} runs")
    print(
        f"{'profile':<24}{'C loop ns':>11}{'pylibsrtp ns':>14}{'ours/Py ns':>12}{'C vs pylibsrtp':>16}"
    )
    for profile, ways in results.items():
        c_loop = ways["c_loop"]["median_ns"]
        theirs = ways["pylibsrtp"]["median_ns"]
        ours = ways["ours_from_python"]["median_ns"]
        print(f"{profile:<24}{c_loop:>11.0f}{theirs:>14.0f}{ours:>12.0f}{theirs / c_loop:>15.2f}x")
    print(f"({elapsed:.1f} s)")

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "srtp_protect",
                "packet_size": PACKET_SIZE,
                "runs": RUNS,
                "c_loop_packets": C_LOOP_PACKETS,
                "python_packets": PYTHON_PACKETS,
                "libsrtp": srtp.libsrtp_version(),
                "python": platform.python_version(),
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "ns_per_packet": results,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"saved {RESULTS}")


if __name__ == "__main__":
    main()
