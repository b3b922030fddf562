"""What the figures were measured on: the machine, its load, and a process's peak memory.

Imports neither TensorFlow nor Keras: versions are read from package metadata.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

BYTES_PER_MIB = 2**20
_PACKAGES = ("tensorflow", "keras", "jax", "torch", "numpy", "h5py", "opencv-python-headless")


def describe_machine() -> dict[str, str]:
    """CPU model, cores, RAM, OS and the versions that matter, as display strings."""
    description = {
        "CPU": _cpu_model(),
        "cores": f"{len(os.sched_getaffinity(0))} usable ({os.cpu_count()} online)",
        "RAM": f"{_meminfo_kib('MemTotal') / 2**20:.1f} GiB",
        "OS": platform.platform(),
        "Python": platform.python_version(),
    }
    for package in _PACKAGES:
        try:
            description[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    description["KERAS_BACKEND"] = os.environ.get("KERAS_BACKEND", "tensorflow (default)")
    return description


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages (runnable processes; above the core count, work waits)."""
    return os.getloadavg()


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _meminfo_kib(key: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    return 0


def peak_rss_mib() -> float:
    """This process's peak resident memory so far (VmHWM), MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line; peak memory needs Linux")


def reset_peak_rss() -> bool:
    """Restart VmHWM from the current RSS (Linux >= 4.0, clear_refs 5); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True
