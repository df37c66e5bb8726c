"""Two host settings a latency measurement on a shared two-core VM needs, each optional and reported.

- `hold_cpu_dma_latency(0)`: the PM QoS request tuned's latency-performance profile makes. While the
  file stays open the cpuidle governor keeps idle cores in their polling state instead of halting
  the vCPU; a halted vCPU here is woken by the hypervisor 1-4 ms late now and then (a pacing loop
  alone on an idle core: 11-16 wake-ups over 0.5 ms late in 10 s with it off, 0-4 with it on).
- `set_realtime(priority)`: SCHED_FIFO for one process. A woken real-time task preempts a fair one
  at once; the load generator's producer shares a core with the receiver that drains every copy,
  and as a fair task (nice -10, or even on a 100 us EEVDF slice) its pacing still woke 2-6 ms late
  2-3 times a second, sending what had fallen due back to back: bunched input the worker then
  queued. Its own CPU is a few percent, so it cannot starve the core (and the kernel's real-time
  throttling would stop it at 95 %).

Neither touches Switchyard: they shape the harness's input and the machine's idle, as an operator's
host tuning would (docs/operations.md). Both need privileges; without them they report False.
"""

from __future__ import annotations

import os
import struct


def hold_cpu_dma_latency(us: int = 0):
    """Ask for at most `us` microseconds of CPU wake-up latency; returns the open file (the request
    lasts until it is closed) or None where /dev/cpu_dma_latency cannot be written."""
    try:
        handle = open("/dev/cpu_dma_latency", "wb", buffering=0)  # noqa: SIM115 (held open on purpose)
    except OSError:
        return None
    try:
        handle.write(struct.pack("i", us))
    except OSError:
        handle.close()
        return None
    return handle


def set_realtime(priority: int) -> bool:
    """Put the calling process in SCHED_FIFO at `priority` (1-99); False without the privilege."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


def scheduling_policy(pid: int) -> str:
    """The process's scheduling class and priority, for the results' record ("SCHED_OTHER", "SCHED_FIFO 10")."""
    try:
        policy = os.sched_getscheduler(pid)
        priority = os.sched_getparam(pid).sched_priority
    except OSError:
        return "unknown"
    name = {os.SCHED_OTHER: "SCHED_OTHER", os.SCHED_FIFO: "SCHED_FIFO", os.SCHED_RR: "SCHED_RR"}.get(policy, str(policy))
    return f"{name} {priority}" if priority else name


def idle_driver() -> dict:
    """What the cores do when idle (cpuidle driver and governor), for the results' machine record."""
    base = "/sys/devices/system/cpu/cpuidle"
    out = {}
    for name in ("current_driver", "current_governor"):
        try:
            with open(os.path.join(base, name)) as f:
                out[name] = f.read().strip()
        except OSError:
            out[name] = None
    return out
