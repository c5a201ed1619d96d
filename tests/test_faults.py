"""Faults at the edges (issue 29): suspicious data files, a data path that came from the
environment, and the CPU count a process may really use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tui.core.data import mnist as mnist_module
from tui.core.data.mnist import DataError, load_mnist, load_npz, load_sample
from tui.core.platform.cpus import cgroup_cpu_quota, cores_text, usable_cores

ROOT = Path(__file__).resolve().parents[1]


def sample_arrays() -> dict[str, np.ndarray]:
    """A few hundred real digits from the bundled sample, as the uint8 arrays of an npz."""
    data = load_sample().subset(train=300, test=100)
    return {
        "x_train": np.rint(data.x_train[..., 0] * 255).astype(np.uint8),
        "y_train": data.y_train,
        "x_test": np.rint(data.x_test[..., 0] * 255).astype(np.uint8),
        "y_test": data.y_test,
    }


def one_sentence(err: BaseException) -> str:
    message = str(err)
    assert "\n" not in message and message.endswith("."), message
    return message


def test_a_binarised_mnist_is_refused_with_the_range_found(tmp_path: Path) -> None:
    """0/1 pixels scale to 0-0.004: training on them reaches chance without a word."""
    arrays = sample_arrays()
    binarised = tmp_path / "binarised.npz"
    np.savez(binarised, **{**arrays, "x_train": (arrays["x_train"] > 127).astype(np.uint8)})
    with pytest.raises(DataError) as info:
        load_npz(binarised)
    message = one_sentence(info.value)
    assert str(binarised) in message
    assert "0 or 1" in message and "0-255" in message


def test_float_pixels_are_refused_naming_their_range(tmp_path: Path) -> None:
    arrays = sample_arrays()
    scaled = tmp_path / "scaled.npz"
    np.savez(scaled, **{**arrays, "x_test": arrays["x_test"] / np.float32(255.0)})
    with pytest.raises(DataError) as info:
        load_npz(scaled)
    message = one_sentence(info.value)
    assert "float32 from 0 to 1" in message and "uint8 pixels 0-255" in message


def test_real_digits_still_load(tmp_path: Path) -> None:
    good = tmp_path / "good.npz"
    np.savez(good, **sample_arrays())
    assert float(load_npz(good).x_train.max()) == 1.0


def test_a_missing_file_from_the_environment_says_it_came_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "gone.npz"
    monkeypatch.setenv(mnist_module.ENV_VAR, str(missing))
    with pytest.raises(DataError) as info:
        load_mnist(allow_download=False)
    message = one_sentence(info.value)
    assert str(missing) in message and "$MNIST_TUI_DATA" in message
    # A path typed on the command line is the user's own: no mention of the variable.
    with pytest.raises(DataError) as typed:
        load_mnist(missing, allow_download=False)
    assert "MNIST_TUI_DATA" not in str(typed.value)


def test_the_cores_said_are_those_the_process_may_use() -> None:
    """Under `taskset -c 0` the header, the log, `train`'s model line and the device panel
    said "CPU (2 cores)" on a two-core machine: all of them read `device_info`/`device_report`."""
    script = (
        "from tui.core.platform.runtime import device_info, device_report\n"
        "print(device_info().describe())\n"
        "print(device_report().render())\n"
    )
    done = subprocess.run(
        ["taskset", "-c", "0", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    first, *panel = done.stdout.splitlines()
    assert first == "CPU (1 core)"
    assert any(line.startswith("CPU") and "1 core ·" in line for line in panel), done.stdout


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_cgroup_v2_quota_caps_the_cores(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    membership = write(tmp_path / "self-cgroup", "0::/user.slice/job\n")
    write(root / "user.slice" / "job" / "cpu.max", "max 100000\n")
    assert cgroup_cpu_quota(root, membership) is None
    # A limit on a parent cgroup binds its children too.
    write(root / "user.slice" / "cpu.max", "150000 100000\n")
    assert cgroup_cpu_quota(root, membership) == 1.5
    assert usable_cores(root, membership) == min(2, len(os.sched_getaffinity(0)))
    write(root / "user.slice" / "job" / "cpu.max", "50000 100000\n")
    assert usable_cores(root, membership) == 1


def test_a_cgroup_v1_quota_caps_the_cores(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    membership = write(tmp_path / "self-cgroup", "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n")
    folder = root / "cpu,cpuacct" / "docker" / "abc"
    write(folder / "cpu.cfs_quota_us", "-1\n")
    write(folder / "cpu.cfs_period_us", "100000\n")
    assert cgroup_cpu_quota(root, membership) is None
    write(folder / "cpu.cfs_quota_us", "100000\n")
    assert cgroup_cpu_quota(root, membership) == 1.0
    assert usable_cores(root, membership) == 1


def test_no_cgroups_to_read_leaves_the_affinity(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path, tmp_path / "absent") is None
    assert usable_cores(tmp_path, tmp_path / "absent") == len(os.sched_getaffinity(0))
    assert (cores_text(1), cores_text(2)) == ("1 core", "2 cores")


def mnist_tui(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), "XDG_CACHE_HOME": str(cwd / "cache")},
        timeout=300,
        check=False,
    )


TINY_AUGMENTED = ["--data", str(ROOT / "tui" / "sample" / "mnist_sample.npz"), "--train-size",
                  "600", "--conv-filters", "8", "--dense-units", "16", "--batch-size", "64",
                  "--augment", "--clean-epochs", "1"]  # fmt: skip


def test_a_saved_augmented_model_opens_in_plain_keras_and_resumes_augmented(
    tmp_path: Path,
) -> None:
    """`train --preset best --out m.keras`, then `keras.models.load_model("m.keras")` without
    mnist-tui: "Could not locate class 'Augmentation'"."""
    runs = tmp_path / "runs"
    first = mnist_tui(tmp_path, "train", *TINY_AUGMENTED, "--epochs", "1", "--runs-dir",
                      str(runs), "--out", "m.keras")  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    (run,) = runs.iterdir()
    models = [tmp_path / "m.keras", run / "last.keras", run / "best.keras"]
    # A Python that does not import mnist-tui (-I: no PYTHONPATH, no current folder on the path).
    plain = (
        "import sys, keras\n"
        "for path in sys.argv[1:]:\n"
        "    model = keras.models.load_model(path)\n"
        "    print(path, model.count_params(), [layer.name for layer in model.layers][0])\n"
        "assert not any(name == 'tui' or name.startswith('tui.') for name in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    opened = subprocess.run(
        [sys.executable, "-I", "-c", plain, *map(str, models)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=180,
        check=False,
    )
    assert opened.returncode == 0, opened.stderr[-2000:]
    assert len(opened.stdout.splitlines()) == 3

    # Resumed, the model trains augmented again, and the switch still turns it off at the end.
    resumed = mnist_tui(tmp_path, "train", "--resume", str(run), "--epochs", "3")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Augmentation off from epoch 3" in resumed.stdout, resumed.stdout
    assert "cannot be switched off" not in resumed.stdout
