"""`DataInfo`: which MNIST a run used, without numpy (the app shows it before numpy loads)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DataInfo:
    """Which MNIST a run used, precisely enough to find it again and to tell it apart."""

    kind: str
    """How it was found: "path", "keras-cache", "download", "sample" or "subset"."""
    source: str
    """An absolute path for "path" and "keras-cache", else a name ("bundled sample")."""
    fingerprint: str
    """sha256 of the images and labels, train then test (hex); equal arrays, equal print."""
    train: int
    """Training images in the source (before any `train_size` slice)."""
    test: int
    """Test images."""
    excluded: tuple[int, ...] = ()
    """Training digits left out (`--exclude-file`), by index in the source, sorted; `train`
    counts them too."""

    @property
    def excluded_digest(self) -> str:
        """sha256 of the left-out indices as "i,j,k" (hex): two runs that left out the same
        digits have the same one."""
        return hashlib.sha256(",".join(map(str, self.excluded)).encode()).hexdigest()

    def record(self) -> dict[str, Any]:
        """What run.json holds: the fields, and where digits were left out, the list, its count
        and `excluded_digest`, to read without counting (the list itself is the authority)."""
        recorded = asdict(self)
        del recorded["excluded"]  # a run that leaves nothing out records what it always did
        if self.excluded:
            recorded["excluded"] = list(self.excluded)
            recorded["excluded_count"] = len(self.excluded)
            recorded["excluded_sha256"] = self.excluded_digest
        return recorded

    @property
    def is_sample(self) -> bool:
        return self.kind == "sample"

    @property
    def short_fingerprint(self) -> str:
        return self.fingerprint[:12]

    def describe(self) -> str:
        """One line naming the source and sizes, e.g. "mnist.npz · 60,000 train / 10,000 test"."""
        name = Path(self.source).name if self.kind in ("path", "keras-cache") else self.source
        text = f"{name} · {self.train:,} train / {self.test:,} test"
        text = f"{text} (sample)" if self.is_sample else text
        return f"{text}, {len(self.excluded):,} left out" if self.excluded else text

    def short(self) -> str:
        """The source and sizes in few columns, for narrow terminals: "mnist.npz 60,000/10,000"."""
        name = Path(self.source).name if self.kind in ("path", "keras-cache") else self.kind
        return f"{name} {self.train:,}/{self.test:,}"
