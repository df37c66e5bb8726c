"""bench/bench_pipe.py's unread mode, small: what it counts is what the workers sent.

Two real workers, 40 consumers (spread 20/20 by the signaling placement), 4 of them read. The
copies to consumers are input x 40 with the pipe's copies counted apart (one per input packet, the
first worker's 20 + 1 and the second's 20), the kernel saw at least the datagrams the workers say
they sent, the unread sockets really drop at the kernel, the sample lost nothing on both sides of
the pipe, and the read/unread check ran both ways on one worker.
"""

from __future__ import annotations

import argparse

import pytest

from bench.bench_pipe import measure

pytestmark = pytest.mark.timeout(120)

CONSUMERS = 40
RATE = 300


def near(value: float, expected: float, within: float = 0.05) -> bool:
    return abs(value - expected) <= within * expected


async def test_unread_mode_counts_the_workers_copies_and_the_pipe_apart():
    args = argparse.Namespace(consumers=CONSUMERS, seconds=0.5, warmup=0.3, rates=[RATE], spread_consumers=20,
                              sample=4, unread_rcvbuf=8192, check_rate=100, read_all=False, stop_after=0)
    results = await measure(args)
    one, two = results["rows"]
    summary = str(results)
    assert (one["split"], two["split"]) == ("40", "20/20"), summary
    for row in (one, two):
        assert row["mode"] == "unread" and row["socketsRead"] == 4 and row["windowInsideSend"], row
        assert not row["saturated"] and abs(row["inputLoss"]) < 0.05, row
        taken = row["workerInputPps"]
        assert near(row["forwardedPerSecond"], taken * CONSUMERS), row
        assert row["copiesPerSecond"] == row["forwardedPerSecond"], row
        # the kernel carried every datagram the workers sent (and maybe others' traffic: it is system-wide)
        assert row["kernelCheck"] > -0.05, row
        # 36 unread sockets of 8 KiB, full after a few copies: nearly all their copies drop there
        assert row["kernelDroppedPerSecond"] > 0.5 * (CONSUMERS - 4) * taken, row
        assert row["loss"] is not None and row["loss"] < 0.05, row
    assert one["pipePerSecond"] == 0 and one["pipeLoss"] is None, one
    assert near(two["pipePerSecond"], two["workerInputPps"]) and abs(two["pipeLoss"]) < 0.05, two
    first, second = two["perWorkerForwardedPerSecond"]
    assert near(first, two["workerInputPps"] * 21) and near(second, two["workerInputPps"] * 20), two
    assert [side["router"] for side in two["latencyBySide"]] == ["A", "B"], two
    assert all(side["p50Ms"] is not None for side in two["latencyBySide"]), two
    check = results["readVsUnread"]
    assert check["read"]["mode"] == "read" and check["read"]["socketsRead"] == CONSUMERS, check
    assert check["read"]["loss"] < 0.05 and check["unread"]["loss"] < 0.05, check
    assert check["cpuUsPerCopy"][0] > 0 and check["cpuUsPerCopy"][1] > 0, check
    assert results["bestCopiesPerSecond"][1] > 0 and results["ratio"] is not None, summary
    assert results["pipeLatency"]["samplesA"] > 0 and results["pipeLatency"]["samplesB"] > 0, summary
