"""How many CPU cores this process may use: its affinity mask and its cgroup's CPU quota, not
the machine's count (`taskset`, a container's `--cpus`, a batch system's limit)."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SELF_CGROUP = Path("/proc/self/cgroup")


def usable_cores(cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP) -> int:
    """The cores this process may run on, capped by its cgroup's quota (rounded up); at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root, self_cgroup)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cores_text(count: int) -> str:
    """A count of cores as the header, the log and the device panel say it: "1 core", "2 cores"."""
    return f"{count} core" if count == 1 else f"{count} cores"


def cgroup_cpu_quota(
    cgroup_root: Path = CGROUP_ROOT, self_cgroup: Path = SELF_CGROUP
) -> float | None:
    """The CPU time per period this process's cgroup, or any cgroup above it, may use (1.5: one
    and a half cores), or None when nothing limits it or there are no cgroups to read."""
    try:
        memberships = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas: list[float] = []
    for line in memberships:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":  # cgroup v2: one unified tree
            readings = [_read_v2(folder) for folder in _up_to_root(cgroup_root, path)]
        elif "cpu" in controllers.split(","):
            mount = cgroup_root / controllers
            if not mount.is_dir():  # mounted as cpu,cpuacct but listed as cpu, or the reverse
                mount = cgroup_root / "cpu"
            readings = [_read_v1(folder) for folder in _up_to_root(mount, path)]
        else:
            continue
        quotas += [quota for quota in readings if quota is not None]
    return min(quotas) if quotas else None


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2's `cpu.max` ("150000 100000", or "max 100000" for no limit) as cores."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = int(fields[1]) if len(fields) > 1 else 100_000
    return int(fields[0]) / period if period > 0 else None


def parse_cfs_quota(quota: str, period: str) -> float | None:
    """cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us` as cores; -1 means no limit."""
    quota_us, period_us = int(quota), int(period)
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def _up_to_root(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder under `mount` and each one above it, which may limit it too."""
    folder = mount / path.strip("/")
    folders = [folder]
    while folder != mount and mount in folder.parents:
        folder = folder.parent
        folders.append(folder)
    return folders


def _read_v2(folder: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        return parse_cpu_max((folder / "cpu.max").read_text())
    return None


def _read_v1(folder: Path) -> float | None:
    with contextlib.suppress(OSError, ValueError):
        quota = (folder / "cpu.cfs_quota_us").read_text()
        period = (folder / "cpu.cfs_period_us").read_text()
        return parse_cfs_quota(quota, period)
    return None


__all__ = ["cgroup_cpu_quota", "cores_text", "parse_cfs_quota", "parse_cpu_max", "usable_cores"]
