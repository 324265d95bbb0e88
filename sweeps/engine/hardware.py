"""What a latency was measured on: numbers are comparable only within one fingerprint."""

import functools
import os
import platform


@functools.cache
def fingerprint() -> str:
    """CPU model, logical cores and GPU name of this node, e.g. 'AMD EPYC | 2 cores | no GPU'."""
    return " | ".join([_cpu_model(), f"{os.cpu_count()} cores", _gpu_name()])


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return "no GPU"
