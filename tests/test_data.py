"""Tests for tui.core.data.mnist: every MNIST source, the fallback order, and bad-file messages."""

from __future__ import annotations

import gzip
import hashlib
import shutil
import socket
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tui.core.data import mnist as mnist_module
from tui.core.data.info import DataInfo
from tui.core.data.mnist import (
    SAMPLE_NOTICE,
    DataError,
    MnistData,
    fingerprint_arrays,
    keras_cache_path,
    load_idx_dir,
    load_mnist,
    load_npz,
    load_path,
    load_recorded,
    load_sample,
)

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_FIRST = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
TEST_FIRST = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
IDX_FILES = {
    "train-images": ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
    "train-labels": ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    "test-images": ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
    "test-labels": ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
}


# --- helpers -------------------------------------------------------------------------------


def raw_arrays(n_train: int = 200, n_test: int = 100) -> dict[str, np.ndarray]:
    """Small uint8 arrays in Keras layout; random but valid, for tests that only need shape."""
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def save_npz(path: Path, arrays: dict[str, np.ndarray], *, compressed: bool = False) -> None:
    save = np.savez_compressed if compressed else np.savez
    save(path, **arrays)  # type: ignore[arg-type]  # numpy's stubs mistype **kwds


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """Encode a uint8 array as IDX: big-endian magic and dimensions, then the bytes."""
    if magic is None:
        magic = 0x0800 | array.ndim
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_idx_dir(
    folder: Path,
    arrays: dict[str, np.ndarray],
    *,
    gz: bool = True,
    dotted: bool = False,
) -> dict[str, Path]:
    """Write arrays as the four IDX files; returns their paths keyed like IDX_FILES."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = {
        "train-images": "x_train",
        "train-labels": "y_train",
        "test-images": "x_test",
        "test-labels": "y_test",
    }
    paths = {}
    for role, key in keys.items():
        name = IDX_FILES[role][1 if dotted else 0] + (".gz" if gz else "")
        payload = idx_bytes(arrays[key])
        path = folder / name
        path.write_bytes(gzip.compress(payload) if gz else payload)
        paths[role] = path
    return paths


def assert_well_formed(mnist: MnistData) -> None:
    for x, y in ((mnist.x_train, mnist.y_train), (mnist.x_test, mnist.y_test)):
        assert x.dtype == np.float32
        assert x.shape == (len(y), 28, 28, 1)
        assert y.dtype == np.uint8
        assert float(x.min()) >= 0.0
        assert float(x.max()) <= 1.0


@pytest.fixture(scope="module")
def full_npz(shared_data: Path) -> MnistData:
    return load_npz(shared_data / "mnist.npz")


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No MNIST_TUI_DATA, and an empty home and KERAS_HOME, so no real cache is seen."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv(mnist_module.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KERAS_HOME", str(home / ".keras"))
    yield home


# --- the real data -------------------------------------------------------------------------


def test_npz_matches_known_facts(full_npz: MnistData, shared_data: Path) -> None:
    assert_well_formed(full_npz)
    assert full_npz.x_train.shape == (60000, 28, 28, 1)
    assert full_npz.x_test.shape == (10000, 28, 28, 1)
    assert np.bincount(full_npz.y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(full_npz.y_test).tolist() == TEST_COUNTS
    assert full_npz.y_train[:10].tolist() == TRAIN_FIRST
    assert full_npz.y_test[:10].tolist() == TEST_FIRST
    assert float(full_npz.x_train.mean()) == pytest.approx(0.1307, abs=1e-4)
    assert float(full_npz.x_train.std()) == pytest.approx(0.3081, abs=1e-4)
    assert full_npz.kind == "path"
    assert full_npz.source == str((shared_data / "mnist.npz").resolve())
    assert full_npz.describe() == "mnist.npz · 60,000 train / 10,000 test"
    assert not full_npz.is_sample


def test_idx_gz_dir_equals_npz(full_npz: MnistData, shared_data: Path) -> None:
    idx = load_idx_dir(shared_data / "mnist")
    assert_well_formed(idx)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(idx, name), getattr(full_npz, name))
    assert idx.kind == "path"
    assert idx.source == str((shared_data / "mnist").resolve())
    # The same arrays, found as another file: the same print, so a run finds its data either way.
    assert idx.fingerprint == full_npz.fingerprint
    assert idx.info.fingerprint == full_npz.info.fingerprint


def test_idx_raw_dotted_copy_equals_npz(
    full_npz: MnistData, shared_data: Path, tmp_path: Path
) -> None:
    """Real files gunzipped and renamed to the dotted style some mirrors use."""
    for original, dotted in IDX_FILES.values():
        payload = gzip.decompress((shared_data / "mnist" / f"{original}.gz").read_bytes())
        (tmp_path / dotted).write_bytes(payload)
    idx = load_path(tmp_path)
    np.testing.assert_array_equal(idx.x_test, full_npz.x_test)
    np.testing.assert_array_equal(idx.y_train, full_npz.y_train)
    assert np.bincount(idx.y_train).tolist() == TRAIN_COUNTS


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("dotted", [False, True], ids=["dashed", "dotted"])
def test_idx_naming_and_compression(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = raw_arrays()
    write_idx_dir(tmp_path, arrays, gz=gz, dotted=dotted)
    mnist = load_idx_dir(tmp_path)
    assert_well_formed(mnist)
    np.testing.assert_array_equal(mnist.y_test, arrays["y_test"])
    np.testing.assert_allclose(mnist.x_train[..., 0] * 255, arrays["x_train"], atol=1e-3)


def test_gzipped_idx_without_gz_suffix_is_sniffed(tmp_path: Path) -> None:
    paths = write_idx_dir(tmp_path, raw_arrays(), gz=True)
    for path in paths.values():
        path.rename(path.with_suffix(""))
    assert len(load_idx_dir(tmp_path).y_train) == 200


def test_load_path_dispatch(shared_data: Path, tmp_path: Path) -> None:
    save_npz(tmp_path / "mnist.npz", raw_arrays(), compressed=True)
    assert len(load_path(tmp_path).y_train) == 200  # folder holding mnist.npz
    assert len(load_path(tmp_path / "mnist.npz").y_train) == 200  # the file itself
    write_idx_dir(tmp_path / "idx", raw_arrays(50, 20))
    assert len(load_path(tmp_path / "idx").y_test) == 20


# --- MnistData -----------------------------------------------------------------------------


def test_subset_takes_first_examples(mnist_small: MnistData) -> None:
    assert len(mnist_small.y_train) == 2000
    assert len(mnist_small.y_test) == 500
    sample = load_sample()
    assert sample.subset(train=20).y_train.tolist() == sample.y_train[:20].tolist()
    assert mnist_small.kind == "subset"
    assert mnist_small.source.endswith(" (subset)")
    smaller = mnist_small.subset(train=10)
    assert smaller.x_train.shape == (10, 28, 28, 1)
    assert len(smaller.y_test) == 500
    # A subset of a subset is named like the first one, not "(subset) (subset)".
    assert smaller.source == mnist_small.source
    assert smaller.kind == "subset"
    assert (smaller.info.train, smaller.info.test) == (10, 500)
    assert mnist_small.subset(train=10**6) is mnist_small  # nothing cut: the same data
    with pytest.raises(ValueError, match="at least one"):
        mnist_small.subset(test=0)


def test_a_subset_is_named_for_its_source_and_printed_apart(tmp_path: Path) -> None:
    save_npz(tmp_path / "digits.npz", raw_arrays())
    whole = load_npz(tmp_path / "digits.npz")
    part = whole.subset(train=50, test=20)
    assert (part.kind, part.source) == ("subset", "digits.npz (subset)")
    assert part.describe() == "digits.npz (subset) · 50 train / 20 test"
    assert part.fingerprint not in ("", whole.fingerprint)
    # Derived from the source's print and the cut: the same cut, the same print; another, not.
    assert whole.subset(train=50, test=20).fingerprint == part.fingerprint
    assert whole.subset(train=51, test=20).fingerprint != part.fingerprint
    assert whole.subset(train=50).fingerprint != part.fingerprint


def test_mnist_data_is_frozen(mnist_small: MnistData) -> None:
    with pytest.raises(AttributeError):
        mnist_small.kind = "sample"  # type: ignore[misc]


def test_training_split_holds_out_the_last_part(mnist_small: MnistData) -> None:
    x, y, x_val, y_val = mnist_small.training_split(1000, 0.1)
    assert (len(x), len(x_val)) == (900, 100)
    np.testing.assert_array_equal(y, mnist_small.y_train[:900])
    np.testing.assert_array_equal(y_val, mnist_small.y_train[900:1000])
    x, _, x_val, _ = mnist_small.training_split(0, 0.0)  # 0: every image, and no validation
    assert (len(x), len(x_val)) == (2000, 0)
    x, _, x_val, _ = mnist_small.training_split(10, 0.25)  # Keras rounds the training part up
    assert (len(x), len(x_val)) == (8, 2)


# --- fingerprints and recorded sources -----------------------------------------------------


def test_npz_and_idx_of_the_same_arrays_print_alike_and_one_pixel_apart(tmp_path: Path) -> None:
    arrays = raw_arrays()
    save_npz(tmp_path / "digits.npz", arrays, compressed=True)
    write_idx_dir(tmp_path / "idx", arrays)
    npz, idx = load_npz(tmp_path / "digits.npz"), load_idx_dir(tmp_path / "idx")
    assert npz.fingerprint == idx.fingerprint
    assert npz.fingerprint == fingerprint_arrays(
        *(arrays[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    )

    changed = {**arrays, "x_test": arrays["x_test"].copy()}
    changed["x_test"][3, 14, 14] ^= 1
    write_idx_dir(tmp_path / "other", changed)
    assert load_idx_dir(tmp_path / "other").fingerprint != npz.fingerprint
    relabelled = {**arrays, "y_train": (arrays["y_train"] + 1) % 10}
    save_npz(tmp_path / "relabelled.npz", relabelled)
    assert load_npz(tmp_path / "relabelled.npz").fingerprint != npz.fingerprint


def test_a_recorded_path_reloads_from_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_npz(tmp_path / "digits.npz", raw_arrays())
    monkeypatch.chdir(tmp_path)
    loaded = load_npz("digits.npz")
    info = loaded.info
    assert info == DataInfo("path", str(tmp_path / "digits.npz"), loaded.fingerprint, 200, 100)
    monkeypatch.chdir("/")  # the run is resumed from another folder
    again = load_recorded(info)
    assert again.fingerprint == info.fingerprint
    np.testing.assert_array_equal(again.x_train, loaded.x_train)
    np.testing.assert_array_equal(again.y_test, loaded.y_test)

    write_idx_dir(tmp_path / "idx", raw_arrays())
    folder = load_path(tmp_path / "idx").info
    assert load_recorded(folder).fingerprint == folder.fingerprint == info.fingerprint
    assert load_recorded(load_sample().info).is_sample


def test_a_recorded_file_that_changed_is_refused(tmp_path: Path) -> None:
    arrays = raw_arrays()
    target = tmp_path / "digits.npz"
    save_npz(target, arrays)
    info = load_npz(target).info
    arrays["y_test"][0] = (arrays["y_test"][0] + 1) % 10  # one label edited in place
    save_npz(target, arrays)
    with pytest.raises(DataError) as err:
        load_recorded(info)
    message = str(err.value)
    assert str(target) in message and "other images or labels" in message
    assert info.short_fingerprint in message
    assert "\n" not in message

    target.unlink()
    with pytest.raises(DataError, match="is gone") as err:
        load_recorded(info)
    assert "\n" not in str(err.value)


def test_a_subset_handed_in_cannot_be_reloaded(mnist_small: MnistData) -> None:
    with pytest.raises(DataError, match="cannot be reloaded"):
        load_recorded(mnist_small.info)


# --- bad sources ---------------------------------------------------------------------------


def assert_one_sentence_naming(err: DataError, path: Path) -> None:
    message = str(err)
    assert str(path) in message
    assert "\n" not in message
    assert message.endswith(".")


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    with pytest.raises(DataError) as info:
        load_path(missing)
    assert_one_sentence_naming(info.value, missing)
    with pytest.raises(DataError):
        load_npz(missing)
    with pytest.raises(DataError):
        load_idx_dir(missing)


def test_not_a_zip(tmp_path: Path) -> None:
    bogus = tmp_path / "mnist.npz"
    bogus.write_text("this is not an archive\n")
    with pytest.raises(DataError, match=r"not a readable \.npz") as info:
        load_npz(bogus)
    assert_one_sentence_naming(info.value, bogus)


def test_truncated_npz(tmp_path: Path) -> None:
    whole = tmp_path / "whole.npz"
    save_npz(whole, raw_arrays(), compressed=True)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError) as info:
        load_npz(cut)
    assert_one_sentence_naming(info.value, cut)


def test_npy_instead_of_npz(tmp_path: Path) -> None:
    single = tmp_path / "x.npy"
    np.save(single, np.zeros(3))
    with pytest.raises(DataError, match="single array") as info:
        load_npz(single)
    assert_one_sentence_naming(info.value, single)


def test_npz_without_the_four_arrays(tmp_path: Path) -> None:
    arrays = raw_arrays()
    partial = tmp_path / "partial.npz"
    np.savez(partial, x_train=arrays["x_train"], y_train=arrays["y_train"])
    with pytest.raises(DataError, match="lacks x_test, y_test") as info:
        load_npz(partial)
    assert_one_sentence_naming(info.value, partial)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("x_train", np.zeros((200, 28, 27), np.uint8), "shape"),
        ("x_train", np.zeros((200, 784), np.uint8), "shape"),
        ("x_test", np.zeros((100, 28, 28), np.float64), "uint8"),
        ("y_train", np.full(200, 10, np.uint8), "0-9"),
        ("y_test", np.zeros(100, np.float32), "integers"),
        ("y_test", np.zeros(99, np.uint8), "100 images but 99 labels"),
    ],
    ids=["narrow", "flat", "float-pixels", "label-10", "float-labels", "count"],
)
def test_npz_with_wrong_arrays(tmp_path: Path, key: str, value: np.ndarray, match: str) -> None:
    bad = tmp_path / "bad.npz"
    save_npz(bad, {**raw_arrays(), key: value})
    with pytest.raises(DataError, match=match) as info:
        load_npz(bad)
    assert_one_sentence_naming(info.value, bad)


def test_idx_missing_file(tmp_path: Path) -> None:
    paths = write_idx_dir(tmp_path, raw_arrays())
    paths["test-labels"].unlink()
    with pytest.raises(DataError, match="t10k-labels") as info:
        load_idx_dir(tmp_path)
    assert_one_sentence_naming(info.value, tmp_path)


def test_idx_truncated_gzip(tmp_path: Path) -> None:
    paths = write_idx_dir(tmp_path, raw_arrays())
    victim = paths["train-images"]
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(DataError, match="decompressed") as info:
        load_idx_dir(tmp_path)
    assert_one_sentence_naming(info.value, victim)


def test_idx_truncated_raw(tmp_path: Path) -> None:
    paths = write_idx_dir(tmp_path, raw_arrays(), gz=False)
    victim = paths["test-images"]
    victim.write_bytes(victim.read_bytes()[:-28])
    with pytest.raises(DataError, match="truncated") as info:
        load_idx_dir(tmp_path)
    assert_one_sentence_naming(info.value, victim)


def test_idx_wrong_magic(tmp_path: Path) -> None:
    """Labels saved under the images name: the header says 2049 where 2051 belongs."""
    arrays = raw_arrays()
    paths = write_idx_dir(tmp_path, arrays, gz=False)
    victim = paths["train-images"]
    victim.write_bytes(idx_bytes(arrays["y_train"]))
    with pytest.raises(DataError, match="magic number 2049, expected 2051") as info:
        load_idx_dir(tmp_path)
    assert_one_sentence_naming(info.value, victim)


def test_idx_count_mismatch(tmp_path: Path) -> None:
    arrays = raw_arrays()
    arrays["y_train"] = arrays["y_train"][:-1]
    write_idx_dir(tmp_path, arrays)
    with pytest.raises(DataError, match="200 images but 199 labels") as info:
        load_idx_dir(tmp_path)
    assert_one_sentence_naming(info.value, tmp_path)


def test_idx_wrong_image_shape(tmp_path: Path) -> None:
    arrays = raw_arrays()
    arrays["x_test"] = np.zeros((100, 32, 32), np.uint8)
    write_idx_dir(tmp_path, arrays)
    with pytest.raises(DataError, match=r"\(100, 32, 32\)") as info:
        load_idx_dir(tmp_path)
    assert_one_sentence_naming(info.value, tmp_path)


def test_idx_labels_out_of_range(tmp_path: Path) -> None:
    arrays = raw_arrays()
    arrays["y_test"][5] = 200
    write_idx_dir(tmp_path, arrays)
    with pytest.raises(DataError, match="0 to 200"):
        load_idx_dir(tmp_path)


# --- resolution order ----------------------------------------------------------------------


def test_explicit_path_beats_env(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_npz(tmp_path / "a.npz", raw_arrays(30, 10))
    save_npz(tmp_path / "b.npz", raw_arrays(40, 10))
    monkeypatch.setenv(mnist_module.ENV_VAR, str(tmp_path / "b.npz"))
    assert len(load_mnist(tmp_path / "a.npz", allow_download=False).y_train) == 30
    from_env = load_mnist(allow_download=False)
    assert len(from_env.y_train) == 40
    assert from_env.kind == "path"


def test_env_beats_keras_cache(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = keras_cache_path()
    cache.parent.mkdir(parents=True)
    save_npz(cache, raw_arrays(30, 10))
    save_npz(tmp_path / "env.npz", raw_arrays(40, 10))
    monkeypatch.setenv(mnist_module.ENV_VAR, str(tmp_path / "env.npz"))
    assert len(load_mnist(allow_download=False).y_train) == 40


def test_bad_env_path_raises_instead_of_falling_back(
    tmp_path: Path, clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "missing"
    monkeypatch.setenv(mnist_module.ENV_VAR, str(missing))
    with pytest.raises(DataError) as info:
        load_mnist(allow_download=False)
    assert_one_sentence_naming(info.value, missing)


def test_keras_cache_from_keras_home(
    shared_data: Path,
    full_npz: MnistData,
    tmp_path: Path,
    clean_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keras_home = tmp_path / "kh"
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    assert keras_cache_path() == keras_home / "datasets" / "mnist.npz"
    keras_cache_path().parent.mkdir(parents=True)
    shutil.copy(shared_data / "mnist.npz", keras_cache_path())
    mnist = load_mnist(allow_download=False)
    assert mnist.kind == "keras-cache"
    assert mnist.source == str(keras_cache_path().resolve())
    assert mnist.fingerprint == full_npz.fingerprint
    assert np.bincount(mnist.y_test).tolist() == TEST_COUNTS


def test_keras_cache_defaults_to_home(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KERAS_HOME")
    assert keras_cache_path() == clean_env / ".keras" / "datasets" / "mnist.npz"


def test_damaged_keras_cache_is_skipped(clean_env: Path) -> None:
    cache = keras_cache_path()
    cache.parent.mkdir(parents=True)
    cache.write_text("half a download")
    assert load_mnist(allow_download=False).kind == "sample"


def test_offline_without_cache_falls_back_to_sample(clean_env: Path) -> None:
    mnist = load_mnist(allow_download=False)
    assert mnist.is_sample
    assert mnist.kind == "sample"
    assert mnist.describe() == "bundled sample · 6,000 train / 1,000 test (sample)"


def test_unreachable_host_skips_keras(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    # A keras that explodes on use proves the download path was never taken.
    monkeypatch.setitem(sys.modules, "keras", None)
    assert load_mnist(download_timeout=0.1).is_sample


def fake_keras(load_data: object) -> types.ModuleType:
    keras = types.ModuleType("keras")
    keras.datasets = types.SimpleNamespace(mnist=types.SimpleNamespace(load_data=load_data))  # type: ignore[attr-defined]
    return keras


def test_download_when_reachable(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = raw_arrays(30, 10)

    def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        return (arrays["x_train"], arrays["y_train"]), (arrays["x_test"], arrays["y_test"])

    monkeypatch.setattr(mnist_module, "_reachable", lambda timeout: True)
    monkeypatch.setitem(sys.modules, "keras", fake_keras(load_data))
    mnist = load_mnist()
    assert mnist.kind == "download"
    assert len(mnist.y_train) == 30
    assert_well_formed(mnist)


def test_failed_download_falls_back_to_sample(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def load_data() -> None:
        raise OSError("connection reset")

    monkeypatch.setattr(mnist_module, "_reachable", lambda timeout: True)
    monkeypatch.setitem(sys.modules, "keras", fake_keras(load_data))
    assert load_mnist().is_sample


# --- the bundled sample --------------------------------------------------------------------


def example_hashes(images: np.ndarray, labels: np.ndarray) -> set[bytes]:
    """A digest per (image, label) pair, so set inclusion checks both in one pass."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    return {
        hashlib.blake2b(row.tobytes() + bytes([label]), digest_size=16).digest()
        for row, label in zip(flat, labels.tolist(), strict=True)
    }


def test_sample_is_stratified() -> None:
    sample = load_sample()
    assert_well_formed(sample)
    assert np.bincount(sample.y_train).tolist() == [600] * 10
    assert np.bincount(sample.y_test).tolist() == [100] * 10
    assert sample.source == "bundled sample"
    assert sample.fingerprint == load_sample().fingerprint  # the same sample, the same print
    assert "6,000" in SAMPLE_NOTICE
    assert "--data" in SAMPLE_NOTICE


def test_sample_is_real_mnist(full_npz: MnistData) -> None:
    sample = load_sample()
    for split in ("test", "train"):
        x, y = f"x_{split}", f"y_{split}"
        in_sample = example_hashes(getattr(sample, x), getattr(sample, y))
        assert len(in_sample) == len(getattr(sample, y))  # no example drawn twice
        assert in_sample <= example_hashes(getattr(full_npz, x), getattr(full_npz, y))
