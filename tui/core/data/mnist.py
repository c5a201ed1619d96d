"""Find and load MNIST: a given path, the Keras cache, a Keras download, or the bundled sample."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import math
import os
import socket
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np

from tui.core.data.info import DataInfo

log = logging.getLogger(__name__)

ENV_VAR = "MNIST_TUI_DATA"
"""Environment variable naming an MNIST source, used when no path is passed."""

DOWNLOAD_HOST = ("storage.googleapis.com", 443)
"""Where Keras fetches mnist.npz from; probed first so an offline machine never hangs."""

IMAGE_SHAPE = (28, 28)
_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_GZIP_MAGIC = b"\x1f\x8b"
_WHAT_TO_PASS = "a Keras-layout mnist.npz or a folder with the four MNIST IDX files"

SAMPLE_NOTICE = (
    "This is a 6,000/1,000 sample of MNIST, not the full 60,000/10,000 set; "
    "pass --data PATH (or set MNIST_TUI_DATA) or go online to train on all of it."
)
"""Shown wherever the bundled sample is in use."""


class DataError(Exception):
    """Bad or missing MNIST source; str(err) is one sentence a person can act on."""


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """sha256 over the arrays' shapes, dtypes and bytes, in order."""
    digest = hashlib.sha256()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True, eq=False)
class MnistData:
    """MNIST split into train and test, scaled and ready for a Conv2D input layer."""

    x_train: np.ndarray
    """Training images, (n, 28, 28, 1) float32 in [0, 1]."""
    y_train: np.ndarray
    """Training labels, (n,) uint8 in 0-9."""
    x_test: np.ndarray
    """Test images, (m, 28, 28, 1) float32 in [0, 1]."""
    y_test: np.ndarray
    """Test labels, (m,) uint8 in 0-9."""
    source: str
    """Where the data came from, for people: a path, or "bundled sample"."""
    kind: str
    """How it was found: "path", "keras-cache", "download", "sample" or "subset"."""
    fingerprint: str = ""
    """sha256 of the uint8 source arrays (see `fingerprint_arrays`); computed when empty."""
    excluded: tuple[int, ...] = ()
    """Training digits of the source left out of `x_train`/`y_train`, by source index, sorted;
    the fingerprint stays the source's."""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            # Arrays handed in directly (tests, tools): print what is there.
            print_ = fingerprint_arrays(self.x_train, self.y_train, self.x_test, self.y_test)
            object.__setattr__(self, "fingerprint", print_)

    @property
    def is_sample(self) -> bool:
        """Whether this is the small bundled sample rather than full MNIST."""
        return self.kind == "sample"

    @property
    def info(self) -> DataInfo:
        """What a run records about its data."""
        return DataInfo(
            self.kind,
            self.source,
            self.fingerprint,
            len(self.y_train) + len(self.excluded),
            len(self.y_test),
            self.excluded,
        )

    def excluding(self, indices: tuple[int, ...] | list[int]) -> MnistData:
        """The same data without the training digits at these source indices (the test set is
        kept whole); itself when that is what it already leaves out.

        Raises:
            DataError: an index outside the training set, or all of it left out, or this data
                already leaves out others (the source must be loaded again).
        """
        chosen = tuple(sorted(set(indices)))
        if chosen == self.excluded:
            return self
        if self.excluded:
            raise DataError(
                f"{self.describe()} already leaves out {len(self.excluded):,} training digits; "
                "load it again to leave out others"
            )
        total = len(self.y_train)
        outside = [i for i in chosen if not 0 <= i < total]
        if outside:
            raise DataError(
                f"training index {outside[0]} is outside {self.describe_source()}'s training "
                f"set (0 to {total - 1:,})"
            )
        if len(chosen) >= total:
            raise DataError(f"leaving out all {total:,} training digits leaves nothing to train on")
        keep = np.ones(total, bool)
        keep[list(chosen)] = False
        return dataclasses.replace(
            self, x_train=self.x_train[keep], y_train=self.y_train[keep], excluded=chosen
        )

    def describe(self) -> str:
        """One line naming the source and sizes, e.g. "mnist.npz · 60,000 train / 10,000 test"."""
        return self.info.describe()

    def training_split(
        self, train_size: int, validation_split: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Training and validation arrays: the first `train_size` images (0: all), of which the
        last `validation_split` part is held out, as Keras's `validation_split` does."""
        x, y = self.x_train, self.y_train
        if train_size:
            x, y = x[:train_size], y[:train_size]
        split_at = math.ceil(len(x) * (1.0 - validation_split))
        return x[:split_at], y[:split_at], x[split_at:], y[split_at:]

    def subset(self, train: int | None = None, test: int | None = None) -> MnistData:
        """The first `train` training and first `test` test examples (None keeps all).

        Slices are copied, so a small subset does not keep the full arrays alive.

        Raises:
            ValueError: if a size is below 1.
        """
        if (train is None or train >= len(self.x_train)) and (
            test is None or test >= len(self.x_test)
        ):
            return self
        print_ = hashlib.sha256(f"{self.fingerprint}:train[:{train}]:test[:{test}]".encode())
        return dataclasses.replace(
            self,
            kind="subset",
            # A subset of a subset is still "<name> (subset)", not "(subset) (subset)".
            source=self.source if self.kind == "subset" else f"{self.describe_source()} (subset)",
            fingerprint=print_.hexdigest(),
            x_train=_first(self.x_train, train),
            y_train=_first(self.y_train, train),
            x_test=_first(self.x_test, test),
            y_test=_first(self.y_test, test),
        )

    def describe_source(self) -> str:
        """The source's name: a file name, "bundled sample", "Keras download"."""
        return Path(self.source).name if self.kind in ("path", "keras-cache") else self.source


def _first(array: np.ndarray, count: int | None) -> np.ndarray:
    if count is None or count >= len(array):
        return array
    if count < 1:
        raise ValueError(f"A subset needs at least one example, got {count}.")
    return array[:count].copy()


def _check_split(images: np.ndarray, labels: np.ndarray, origin: str) -> None:
    """Raise DataError unless images are (n, 28, 28) uint8 using more than 0/1 and labels (n,)
    integers in 0-9."""
    fix = f"replace it with {_WHAT_TO_PASS}"
    if images.dtype != np.uint8:
        found = f" from {images.min():g} to {images.max():g}" if images.size else ""
        raise DataError(
            f"{origin}: images are {images.dtype}{found}, expected uint8 pixels 0-255; {fix}."
        )
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise DataError(f"{origin}: images have shape {images.shape}, expected (n, 28, 28); {fix}.")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{origin}: labels are {labels.dtype} with shape {labels.shape}, "
            f"expected a 1-D array of integers; {fix}."
        )
    if len(images) != len(labels):
        raise DataError(
            f"{origin}: {len(images):,} images but {len(labels):,} labels; "
            f"the files do not belong together, {fix}."
        )
    if len(images) == 0:
        raise DataError(f"{origin}: the split is empty; {fix}.")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high > 9:
        raise DataError(f"{origin}: labels range from {low} to {high}, expected 0-9; {fix}.")
    brightest = int(images.max())
    if brightest <= 1:
        # A binarised MNIST (0/1 pixels) scales to 0-0.004 and trains silently to chance.
        raise DataError(
            f"{origin}: every pixel is 0{' or 1' if brightest else ''}, expected values 0-255 "
            f"(a binarised MNIST? multiply its images by 255); {fix}."
        )


def _build(splits: dict[str, np.ndarray], origin: str, *, source: str, kind: str) -> MnistData:
    """Validate raw uint8 splits and scale them into an MnistData."""
    _check_split(splits["x_train"], splits["y_train"], f"{origin} (train)")
    _check_split(splits["x_test"], splits["y_test"], f"{origin} (test)")

    def scale(images: np.ndarray) -> np.ndarray:
        scaled = images.astype(np.float32)
        scaled /= 255.0  # in place: the full train set is ~190 MB as float32
        return scaled[..., np.newaxis]

    y_train = splits["y_train"].astype(np.uint8)
    y_test = splits["y_test"].astype(np.uint8)
    # Printed from the uint8 source (a quarter of the float32 bytes): the same file always
    # gives the same print, whatever it was found as.
    print_ = fingerprint_arrays(splits["x_train"], y_train, splits["x_test"], y_test)
    return MnistData(
        x_train=scale(splits["x_train"]),
        y_train=y_train,
        x_test=scale(splits["x_test"]),
        y_test=y_test,
        source=source,
        kind=kind,
        fingerprint=print_,
    )


def _read_npz(file: str | Path | IO[bytes], origin: str) -> dict[str, np.ndarray]:
    """Read the four arrays from an npz given as a path or binary file object."""
    try:
        # allow_pickle=False: a data file must never be able to run code.
        loaded = np.load(file, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise DataError(f"{origin} holds a single array, not {_WHAT_TO_PASS}.")
        with loaded as archive:
            missing = [key for key in _NPZ_KEYS if key not in archive.files]
            if missing:
                raise DataError(
                    f"{origin} lacks {', '.join(missing)} (it has "
                    f"{', '.join(archive.files) or 'no arrays'}); pass {_WHAT_TO_PASS}."
                )
            return {key: archive[key] for key in _NPZ_KEYS}
    except FileNotFoundError:
        raise DataError(f"{origin} does not exist; pass {_WHAT_TO_PASS}.") from None
    # Damage shows up as any of these depending on where the archive breaks.
    except (OSError, ValueError, EOFError, zlib.error, zipfile.BadZipFile) as err:
        raise DataError(
            f"{origin} is not a readable .npz archive ({_reason(err)}); pass {_WHAT_TO_PASS}."
        ) from None


def _reason(err: BaseException) -> str:
    """A short, single-clause description of a low-level read error."""
    text = str(err).strip()
    if "pickled" in text:
        # numpy's wording about allow_pickle would send people the wrong way.
        return "not a zip file"
    return text.splitlines()[0].split(". ")[0].rstrip(".") if text else type(err).__name__


def load_npz(path: str | Path) -> MnistData:
    """Load a Keras-layout mnist.npz (x_train, y_train, x_test, y_test as uint8).

    Raises:
        DataError: if the file is missing, not an npz, or its arrays are not MNIST-shaped.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} does not exist or is not a file; pass {_WHAT_TO_PASS}.")
    # Absolute, so that a run resumed from another folder finds the same file.
    source = str(path.resolve())
    return _build(_read_npz(path, str(path)), str(path), source=source, kind="path")


def _idx_candidates(prefix: str, what: str, ndim: int) -> list[str]:
    """File names an IDX file goes by: both the original and the dotted style, gz or raw."""
    stems = [f"{prefix}-{what}-idx{ndim}-ubyte", f"{prefix}-{what}.idx{ndim}-ubyte"]
    return [name for stem in stems for name in (f"{stem}.gz", stem)]


def _read_idx(path: Path, magic: int) -> np.ndarray:
    """Parse one IDX file of unsigned bytes (gzip or raw), checking its header against the data."""
    try:
        raw = path.read_bytes()
        # Sniff rather than trust the name: people gunzip files without renaming them.
        if raw[:2] == _GZIP_MAGIC:
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(
            f"{path} could not be read or decompressed ({_reason(err)}); "
            "download it again or pass another MNIST source."
        ) from None

    ndim = 3 if magic == _IMAGES_MAGIC else 1
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path} is too short to be an IDX file; download it again.")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        expected = "images" if magic == _IMAGES_MAGIC else "labels"
        raise DataError(
            f"{path} has IDX magic number {found}, expected {magic} for {expected}; "
            "check the file is the right one of the four MNIST files."
        )
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected_bytes = int(np.prod(dims))
    if len(raw) - header_size != expected_bytes:
        raise DataError(
            f"{path} holds {len(raw) - header_size:,} bytes of data but its header promises "
            f"{expected_bytes:,}; the file is truncated or damaged, download it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(dims)


def load_idx_dir(path: str | Path) -> MnistData:
    """Load MNIST from a folder holding the four IDX files, gzipped or raw.

    Accepts both `train-images-idx3-ubyte` and `train-images.idx3-ubyte` names (and the
    `t10k-` test files), each with or without `.gz`.

    Raises:
        DataError: if a file is missing, damaged, or does not match its partner.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder} does not exist or is not a folder; pass {_WHAT_TO_PASS}.")

    def find(prefix: str, what: str, ndim: int) -> Path:
        names = _idx_candidates(prefix, what, ndim)
        for name in names:
            if (folder / name).is_file():
                return folder / name
        raise DataError(
            f"{folder} has no {names[1]}[.gz]; put all four MNIST IDX files there "
            "or pass a Keras-layout mnist.npz instead."
        )

    splits: dict[str, np.ndarray] = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        splits[f"x_{split}"] = _read_idx(find(prefix, "images", 3), _IMAGES_MAGIC)
        splits[f"y_{split}"] = _read_idx(find(prefix, "labels", 1), _LABELS_MAGIC)
    return _build(splits, str(folder), source=str(folder.resolve()), kind="path")


def load_path(path: str | Path) -> MnistData:
    """Load MNIST from a path a person gave: an npz file, an IDX folder, or a folder with mnist.npz.

    Raises:
        DataError: if nothing usable is there.
    """
    target = Path(path).expanduser()
    if target.is_file():
        return load_npz(target)
    if target.is_dir():
        if (target / "mnist.npz").is_file():
            return load_npz(target / "mnist.npz")
        return load_idx_dir(target)
    raise DataError(f"{target} does not exist; pass {_WHAT_TO_PASS}.")


def keras_cache_path() -> Path:
    """Where Keras keeps its downloaded mnist.npz: under $KERAS_HOME, else ~/.keras."""
    keras_home = os.environ.get("KERAS_HOME")
    base = Path(keras_home).expanduser() if keras_home else Path.home() / ".keras"
    return base / "datasets" / "mnist.npz"


def load_sample() -> MnistData:
    """Load the small stratified MNIST subset shipped inside the package.

    Raises:
        DataError: if the installation lacks the sample file.
    """
    resource = resources.files("tui").joinpath("sample").joinpath("mnist_sample.npz")
    origin = "the bundled MNIST sample"
    try:
        with resource.open("rb") as handle:
            splits = _read_npz(handle, origin)
    except FileNotFoundError:
        raise DataError(
            "The bundled MNIST sample is missing from this installation; "
            "reinstall mnist-tui or pass --data PATH."
        ) from None
    return _build(splits, origin, source="bundled sample", kind="sample")


def _reachable(timeout: float) -> bool:
    """Whether the Keras download host answers within `timeout` seconds."""
    try:
        with socket.create_connection(DOWNLOAD_HOST, timeout=timeout):
            return True
    except OSError:
        return False


def _download(timeout: float) -> MnistData | None:
    """Fetch MNIST through Keras, or None when offline or the download fails."""
    if not _reachable(timeout):
        log.info("MNIST download host unreachable; using the bundled sample")
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        splits = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        return _build(splits, "the Keras MNIST download", source="Keras download", kind="download")
    # Anything at all (proxy pages, hash mismatch, a broken TF install) must end in the sample,
    # never in a traceback on the first screen.
    except Exception as err:
        log.warning("MNIST download failed, using the bundled sample: %s", err)
        return None


def load_mnist(
    path: str | Path | None = None,
    *,
    allow_download: bool = True,
    download_timeout: float = 10.0,
) -> MnistData:
    """Find and load MNIST from the best source available.

    Order: `path`, else $MNIST_TUI_DATA; the Keras cache; a Keras download (if allowed and
    the host answers within `download_timeout`); the bundled sample.

    Args:
        path: An npz file or IDX folder. A bad explicit path raises instead of falling back,
            since silently training on something else would hide the mistake.
        allow_download: Whether to try the network at all.
        download_timeout: Seconds to wait for the download host before giving up.

    Raises:
        DataError: if `path` or $MNIST_TUI_DATA is given but unusable.
    """
    if path is not None:
        return load_path(path)
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        try:
            return load_path(from_env)
        except DataError as err:
            # Nobody typed this path in the command: say where it came from.
            raise DataError(
                f"{str(err).rstrip('.')} (the path is ${ENV_VAR}'s: fix or unset it)."
            ) from None

    cache = keras_cache_path()
    if cache.is_file():
        try:
            return dataclasses.replace(load_npz(cache), kind="keras-cache")
        except DataError as err:
            # Nobody asked for the cache by name, so a damaged one is skipped, not fatal.
            log.warning("Ignoring the Keras cache: %s", err)

    if allow_download:
        downloaded = _download(download_timeout)
        if downloaded is not None:
            return downloaded
    return load_sample()


def load_recorded(info: DataInfo) -> MnistData:
    """The data a run recorded, from where it was found then, checked against its fingerprint.

    Raises:
        DataError: the source is gone, unreadable, or holds other arrays than it did.
    """
    if info.kind == "sample":
        data = load_sample()
    elif info.kind in ("path", "keras-cache", "download"):
        source = keras_cache_path() if info.kind == "download" else Path(info.source)
        if not source.exists():
            raise DataError(f"{source} is gone")
        data = load_path(source)
    else:
        raise DataError(f"{info.describe()} was handed in by a program and cannot be reloaded")
    if data.fingerprint != info.fingerprint:
        raise DataError(
            f"{data.source} now holds other images or labels (fingerprint "
            f"{data.fingerprint[:12]}, recorded {info.fingerprint[:12]})"
        )
    return data.excluding(info.excluded)
