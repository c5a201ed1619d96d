"""tf.distribute on CPU: mirrored over two logical CPUs, two loopback workers, device report."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tui.cli import build_parser, distribute_options
from tui.core.platform.cpus import cores_text, usable_cores
from tui.core.platform.devices import DeviceReport, GpuStatus
from tui.core.platform.distribute import (
    DistributeError,
    DistributeOptions,
    enable_memory_growth,
    is_chief,
    make_strategy,
    make_strategy_for,
    parse_devices,
    read_tf_config,
)
from tui.core.platform.runtime import device_report

SAMPLE = Path(__file__).resolve().parents[1] / "tui" / "sample" / "mnist_sample.npz"
"""Real MNIST digits every checkout has."""
CHILD = Path(__file__).with_name("distribute_child.py")
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300
"""Seconds any one training process may take on a busy two-core machine before it fails."""
ACCURACY_GAP = 0.03
"""How far a distributed run's test accuracy may be from one device's on the same data."""
# Small enough for seconds per run, big enough that accuracy means something (about 90%).
TINY_FLAGS = ["--train-size", "2000", "--epochs", "2", "--conv-filters", "8",
              "--dense-units", "32", "--dropout", "0", "--batch-size", "64",
              "--learning-rate", "3e-3", "--seed", "7"]  # fmt: skip
ACCURACY = re.compile(r"Test accuracy: (\d+\.\d\d)%")


def _env(cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a child; `cache` receives its TensorFlow log, away from its files."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG", "MNIST_TUI_DATA")}
    env["XDG_CACHE_HOME"] = str(cache)
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        pytest.fail(f"{process.args!r} did not finish in {TIMEOUT} s:\n{out}\n{err[-2000:]}")
    return process.returncode, out, err


def _child_result(process: subprocess.Popen[str]) -> dict[str, Any]:
    code, out, err = _finish(process)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    assert code == 0 and lines, f"child failed ({code}):\n{out}\n{err[-3000:]}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


def _free_ports(count: int) -> list[int]:
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]


def _tf_config(ports: list[int], index: int) -> str:
    workers = [f"127.0.0.1:{port}" for port in ports]
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})


# --- distribution, each set-up in fresh processes ----------------------------------------------
def test_mirrored_over_two_logical_cpus_trains_like_one_device(tmp_path: Path) -> None:
    npz = str(SAMPLE)
    env = _env(tmp_path / "cache")
    # Both at once: the machine has two cores and each run is mostly start-up.
    mirrored = _start([str(CHILD), "mirrored", npz, "2000"], tmp_path, env)
    single = _start([str(CHILD), "default", npz, "2000"], tmp_path, env)
    one, two = _child_result(single), _child_result(mirrored)

    assert two["device"] == "MirroredStrategy · 2x CPU"
    assert two["replicas"] == 2 and two["local_copies"] == 2
    assert two["per_replica_batch"] == [32, 32], "the global batch of 64 is split in two"
    assert two["replica_weights_identical"]
    for run in (one, two):
        assert run["reason"] == "finished"
        events = run["events"]
        assert events.index("TrainingStarted") < events.index("TrainingStopped")
        assert events.count("EpochEnded") == 2 and "BatchProgress" in events
        # The controls still steer fit under the strategy: pause, resume, stop within a batch.
        assert run["steered_reason"] == "stopped by user"
        steered = run["steered_events"]
        assert steered.index("Paused") < steered.index("Resumed") < steered.index("TrainingStopped")
        assert run["epochs_after_stop"] == 0
    assert one["accuracy"] > 0.8, "the single-device baseline must have learned something"
    assert abs(two["accuracy"] - one["accuracy"]) <= ACCURACY_GAP


def test_two_workers_over_loopback_train_like_one_device_and_only_the_chief_writes(
    tmp_path: Path,
) -> None:
    data = ["--data", str(SAMPLE)]
    ports = _free_ports(2)
    dirs = [tmp_path / "worker0", tmp_path / "worker1", tmp_path / "single"]
    for folder in dirs:
        folder.mkdir()
    train = ["-m", "tui", "train", *data, *TINY_FLAGS, "--runs-dir", "runs", "--out", "models"]
    workers = [
        _start(
            [*train, "--strategy", "multiworker"],
            dirs[i],
            _env(tmp_path / f"cache{i}", TF_CONFIG=_tf_config(ports, i)),
        )
        for i in (0, 1)
    ]
    runs = [_finish(worker) for worker in workers]
    single = _finish(_start(train, dirs[2], _env(tmp_path / "cache2")))

    accuracies = []
    for code, out, err in [*runs, single]:
        assert code == 0, f"{out}\n{err[-3000:]}"
        match = ACCURACY.search(out)
        assert match, out
        accuracies.append(float(match.group(1)) / 100)
    chief_out, other_out = runs[0][1], runs[1][1]
    assert "MultiWorkerMirroredStrategy · 2 workers · 1x CPU each" in chief_out
    assert "worker 1 of a 2-process cluster" in other_out
    assert accuracies[0] == accuracies[1], "both workers hold the same model"
    assert accuracies[2] > 0.8
    assert abs(accuracies[0] - accuracies[2]) <= ACCURACY_GAP

    assert not any(dirs[1].iterdir()), "the non-chief worker wrote files"
    (run_dir,) = (dirs[0] / "runs").iterdir()
    assert len(list((dirs[0] / "models").glob("*.keras"))) == 1
    assert (run_dir / "last.keras").is_file() and (run_dir / "metrics.csv").is_file()
    saved = json.loads((run_dir / "evaluation.json").read_text(encoding="utf-8"))
    assert saved["accuracy"] == pytest.approx(accuracies[0], abs=5e-5)
    # Gathered across workers in order: the saved predictions score what evaluate() said.
    predictions = np.load(run_dir / "predictions.npz")
    labels = predictions["labels"]
    assert predictions["probabilities"].shape == (len(labels), 10)
    scored = float((predictions["probabilities"].argmax(axis=1) == labels).mean())
    assert scored == pytest.approx(saved["accuracy"], abs=1e-6)


def test_mixed_precision_in_a_fresh_process_trains_with_float32_output(tmp_path: Path) -> None:
    result = _child_result(
        _start(
            [str(CHILD), "default", str(SAMPLE), "600", "--mixed-precision"],
            tmp_path,
            _env(tmp_path / "cache"),
        )
    )
    assert result["policy"] == "mixed_float16"
    assert result["compute_dtype"] == "float16", "the conv layers compute in half precision"
    assert result["output_dtype"] == "float32" and result["predict_dtype"] == "float32"
    assert result["reason"] == "finished"


# --- set-up and checks, in this process ---------------------------------------------------------
def test_cli_passes_the_strategy_flags_through() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["train", "--strategy", "mirrored", "--devices", "cpu:0, CPU:1", "--mixed-precision"]
    )
    assert distribute_options(args) == DistributeOptions("mirrored", ("/cpu:0", "/cpu:1"), True)
    app_args = parser.parse_args(["--strategy", "multiworker"])
    assert distribute_options(app_args).strategy == "multiworker"
    assert distribute_options(parser.parse_args(["train"])) == DistributeOptions()


def test_multiworker_without_tf_config_is_one_line_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tui", "train", "--strategy", "multiworker"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_env(tmp_path / "cache"),
        timeout=TIMEOUT,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs TF_CONFIG" in lines[0], done.stderr
    assert not any(tmp_path.glob("runs*")) and not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "needs TF_CONFIG"),
        ("{not json", "not valid JSON"),
        ('{"cluster": {"worker": ["a:1"]}}', 'needs a "cluster" and a "task"'),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief"}}', "not a role"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "index 1"),
        ('{"cluster": {"worker": "a:1"}, "task": {"type": "worker"}}', "list of"),
    ],
)
def test_bad_tf_config_is_a_sentence(value: str, problem: str) -> None:
    with pytest.raises(DistributeError, match=re.escape(problem)):
        read_tf_config({"TF_CONFIG": value})


def test_chief_is_the_chief_else_worker_zero() -> None:
    workers = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0}}
    assert is_chief({})
    assert is_chief({"TF_CONFIG": json.dumps(workers)})
    workers["task"] = {"type": "worker", "index": 1}
    assert not is_chief({"TF_CONFIG": json.dumps(workers)})
    with_chief = {
        "cluster": {"chief": ["c:0"], "worker": ["a:1"]},
        "task": {"type": "worker", "index": 0},
    }
    assert not is_chief({"TF_CONFIG": json.dumps(with_chief)})
    assert read_tf_config({"TF_CONFIG": json.dumps(with_chief)}).workers == 2


def test_device_names_and_options_are_checked() -> None:
    assert parse_devices("gpu:0,/GPU:1") == ("/gpu:0", "/gpu:1")
    assert parse_devices("/job:localhost/replica:0/task:0/device:CPU:1") == ("/cpu:1",)
    assert parse_devices(None) == ()
    with pytest.raises(DistributeError, match="not a device name"):
        parse_devices("tpu:0")
    with pytest.raises(DistributeError, match="twice"):
        parse_devices("cpu:0,cpu:0")
    with pytest.raises(DistributeError, match="only applies to --strategy mirrored"):
        DistributeOptions("default", ("/gpu:0",))
    with pytest.raises(DistributeError, match="not one of"):
        DistributeOptions("parameter-server")


def test_default_strategy_and_gpu_paths_fall_back_on_cpu() -> None:
    import tensorflow as tf

    assert make_strategy("default") is tf.distribute.get_strategy()
    assert make_strategy_for(DistributeOptions()) is None
    assert enable_memory_growth() == 0, "no GPU here: memory growth is a no-op"


def test_device_report_renders_cpu_only_here() -> None:
    report = device_report()
    assert report.cpu_only and report.gpus == ()
    assert "CPU:0" in report.devices
    text = report.render()
    assert "none: CPU only" in text
    assert "tensorflow" in text and "intra-op threads" in text
    assert f"{cores_text(usable_cores())} ·" in text
    assert device_report("MirroredStrategy · 2x CPU").training_on.startswith("Mirrored")


def test_device_report_renders_gpu_rows() -> None:
    gib = 2**30
    report = DeviceReport(
        backend="tensorflow",
        devices=("CPU:0", "GPU:0"),
        training_on="MirroredStrategy · 1x GPU",
        gpus=(GpuStatus(0, "Test GPU", gib, 3 * gib, 16 * gib, 87), GpuStatus(1, "Other")),
    )
    text = report.render()
    assert "CPU only" not in text
    assert "GPU 0: Test GPU · 1.0 GiB in use, peak 3.0 GiB of 16.0 GiB · 87% busy" in text
    assert "GPU 1: Other" in text


async def test_device_panel_shows_the_report() -> None:
    from textual.app import App, ComposeResult

    from tui.widgets.devices import DevicePanel

    class Host(App[None]):
        def compose(self) -> ComposeResult:
            yield DevicePanel()

    async with Host().run_test(size=(80, 12)) as pilot:
        panel = pilot.app.query_one(DevicePanel)
        assert "waiting" in str(panel.render())
        panel.report = device_report()
        await pilot.pause()
        shown = str(panel.render())
        assert "none: CPU only" in shown and "Trains on" in shown
