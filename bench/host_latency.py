"""Two host settings a latency measurement on a shared two-core VM needs, each optional and reported.

- `hold_cpu_dma_latency(0)`: the PM QoS request tuned's latency-performance profile makes. While the
  file stays open the cpuidle governor keeps idle cores in their polling state instead of halting
  the vCPU; a halted vCPU here is woken by the hypervisor 1-4 ms late now and then (a pacing loop
  alone on an idle core: 11-16 wake-ups over 0.5 ms late in 10 s with it off, 0-4 with it on).
- `set_fair_slice(us)`: a short EEVDF slice for one process (sched_setattr with sched_runtime on a
  SCHED_OTHER task, Linux 6.12+). A woken task with a shorter slice than the running one preempts
  it at once instead of waiting out the other's slice (1.4 ms on two cores): what the load
  generator's producer needs on the core it shares with the receiver.

Neither touches Switchyard: they shape the harness's input and the machine's idle, as an operator's
host tuning would (docs/operations.md). Both need privileges; without them they report False.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct

# sched_setattr's syscall number per architecture (there is no libc wrapper before glibc 2.41)
SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}
SCHED_ATTR_SIZE = 56  # SCHED_ATTR_SIZE_VER1
SCHED_OTHER = 0


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


def set_fair_slice(us: int, nice: int = 0) -> bool:
    """Give the calling process an EEVDF slice of `us` microseconds (0.1-100 ms are accepted) at
    `nice`; False where the kernel or privileges do not allow it."""
    number = SCHED_SETATTR.get(platform.machine())
    if number is None:
        return False
    attr = ctypes.create_string_buffer(
        struct.pack("IIQiIQQQII", SCHED_ATTR_SIZE, SCHED_OTHER, 0, nice, 0, us * 1000, 0, 0, 0, 0))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(number, 0, attr, 0) != 0:
        return False
    return fair_slice_us() == us


def fair_slice_us(pid: int | str = "self") -> int | None:
    """The process's current EEVDF slice in microseconds, from /proc/<pid>/sched (None if absent)."""
    try:
        with open(f"/proc/{pid}/sched") as f:
            for line in f:
                if line.startswith("se.slice"):
                    return int(line.split(":")[1]) // 1000
    except (OSError, ValueError):
        pass
    return None


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
