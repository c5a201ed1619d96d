"""The engine as its own process: real sockets, real signals, real users, real files.

One engine per module trains a long round while the tests throw viewers and bad input at it;
the tests that kill or hang up on processes start their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import math
import os
import re
import signal
import socket
import stat
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest
from local_engine import LocalEngine
from scripted_engine import ScriptedEngine
from tiny import TINY

from tui.core.data.mnist import MnistData
from tui.core.settings.requests import Setup
from tui.core.training.events import BatchProgress, EpochEnded, TargetChanged, TrainingEvent
from tui.core.training.phase import Phase
from tui.core.training.snapshot import Snapshot, advance, initial_snapshot
from tui.engine import protocol as p
from tui.engine import registry
from tui.engine.arrays import pack, unpack
from tui.engine.client import EngineClient, EngineUnavailable, with_engine
from tui.engine.spawn import SpawnedEngine, spawn_engine, wait_for_socket

T = TypeVar("T")
SAMPLE = Path(__file__).resolve().parents[1] / "tui" / "sample" / "mnist_sample.npz"
LONG = TINY.with_changes(epochs=1000, train_size=3000)
"""Hundreds of epochs: it trains for as long as the tests need it to."""
CONNECT_ATTEMPTS: list[Callable[[str], object]] = []
"""Called with the address of every `socket.connect` in this process, from an audit hook."""


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and CONNECT_ATTEMPTS:
        for attempt in CONNECT_ATTEMPTS:
            attempt(str(args[1]))


sys.addaudithook(_audit)


def run(coroutine: Awaitable[T]) -> T:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def start(tmp: Path, hparams: Any = LONG, **spawn: Any) -> SpawnedEngine:
    setup = Setup(hparams, preset="tiny", data_path=str(SAMPLE), runs_dir=str(tmp / "runs"))
    engine = spawn_engine(setup, **spawn)
    wait_for_socket(engine)
    return engine


def stop(engine: SpawnedEngine, timeout: float = 60) -> int:
    with contextlib.suppress(ProcessLookupError):
        engine.process.send_signal(signal.SIGTERM)
        engine.process.send_signal(signal.SIGCONT)  # a stopped engine cannot act on SIGTERM
    return engine.process.wait(timeout)


class Watched:
    """What a viewer has seen so far: the engine's welcome, the events, the state now."""

    def __init__(self, welcome: p.Welcome) -> None:
        self.welcome = welcome
        self.events: list[TrainingEvent] = []
        self.now: Snapshot = welcome.snapshot

    def add(self, event: TrainingEvent) -> None:
        self.events.append(event)
        self.now = advance(self.now, event)

    @property
    def epochs(self) -> list[int]:
        return [e.epoch for e in self.events if isinstance(e, EpochEnded)]

    @property
    def progress(self) -> int:
        return sum(isinstance(e, BatchProgress) for e in self.events)


async def follow(
    socket_path: str, until: Callable[[Watched], bool], timeout: float = 120
) -> Watched:
    """Watch an engine until `until(watched)` holds."""
    client = await EngineClient.connect(socket_path, "test")
    watched = Watched(client.welcome)
    reader = asyncio.ensure_future(client.run(watched.add))
    deadline = time.monotonic() + timeout
    try:
        while not until(watched):
            if time.monotonic() > deadline or reader.done():
                raise AssertionError("the engine never got there")
            await asyncio.sleep(0.02)
        return watched
    finally:
        await client.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def command(socket_path: str, kind: type[p.Command], **fields: Any) -> p.Reply:
    return await with_engine(socket_path, "test", lambda c: c.request(kind, **fields))


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SpawnedEngine]:
    """One engine in its own process, training a long round."""
    engine = start(tmp_path_factory.mktemp("engine"), train=True)
    run(follow(engine.socket, lambda w: w.progress > 0))
    yield engine
    stop(engine)


def steps_trained(socket_path: str, seconds: float) -> int:
    """How many batches the engine trained while one viewer watched for `seconds`, from the
    first and last progress event it saw (events are throttled; the steps they carry are not)."""
    started = time.monotonic()
    watched = run(follow(socket_path, lambda w: time.monotonic() - started > seconds))
    seen = [e for e in watched.events if isinstance(e, BatchProgress)]
    assert len(seen) >= 2, "no training to measure"
    first, last = seen[0], seen[-1]
    return (last.epoch - first.epoch) * last.steps + last.step - first.step


def logged_within(log: Path, pattern: str, timeout: float) -> str:
    """The first line of the engine's log matching `pattern`, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if re.search(pattern, line):
                return line
        time.sleep(0.2)
    raise AssertionError(f"nothing like {pattern!r} in {log} after {timeout} s")


# --- who may connect ----------------------------------------------------------------------------
def test_the_socket_and_its_folder_are_private(training: SpawnedEngine) -> None:
    path = Path(training.socket)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    record = registry.record_path(training.start.id)
    info = json.loads(record.read_text())
    assert (info["pid"], info["socket"]) == (training.pid, training.socket)
    assert info["run"] and (Path(info["run"]) / "engine.json").is_file()


@pytest.mark.skipif(os.getuid() != 0, reason="changing user needs root")
def test_another_user_cannot_connect(training: SpawnedEngine) -> None:
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        try:
            os.setgid(65534)
            os.setuid(65534)  # nobody
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(training.socket)
            os._exit(1)
        except PermissionError:
            os._exit(0)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "nobody was let in"


def test_a_viewer_of_another_protocol_version_gets_one_line(training: SpawnedEngine) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(training.socket)
        s.sendall(b'{"type":"Hello","version":99}\n')
        answer = s.makefile("rb").readline()
    refused = p.decode_server(answer)
    assert isinstance(refused, p.Refused)
    assert f"protocol {p.PROTOCOL_VERSION}" in refused.reason and "99" in refused.reason


# --- bad input never stops training -------------------------------------------------------------
def test_bad_input_is_answered_or_dropped_and_training_goes_on(training: SpawnedEngine) -> None:
    def talk(lines: list[bytes]) -> list[bytes]:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(training.socket)
            s.settimeout(10)
            reader = s.makefile("rb")
            s.sendall(p.encode(p.Hello(p.PROTOCOL_VERSION, "fuzz")))
            reader.readline()  # the welcome
            replies = []
            for line in lines:
                s.sendall(line)
                while True:
                    answer = reader.readline()
                    if not answer or b'"Reply"' in answer or b'"Closing"' in answer:
                        replies.append(answer)
                        break
            return replies

    garbage, wrong_type, unknown = talk(
        [
            b"\x00\xff not json at all\n",
            b'{"type":"SetTarget","id":7,"target":"x"}\n',
            b'{"type":"FormatDisk","id":8}\n',
        ]
    )
    for answer, expected_id in ((garbage, 0), (wrong_type, 7), (unknown, 8)):
        reply = p.decode_server(answer)
        assert isinstance(reply, p.Reply) and reply.id == expected_id and reply.error
    assert "got `str` - at `$.target`" in p.decode_server(wrong_type).error  # type: ignore[union-attr]
    # A 10 MB line: the engine drops the viewer as soon as the line passes its limit.
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(training.socket)
        s.settimeout(10)
        s.sendall(p.encode(p.Hello(p.PROTOCOL_VERSION, "fuzz")))
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for _ in range(10):
                s.sendall(b"x" * (1 << 20))
            s.sendall(b"\n")
    # Half a message, then a hang-up.
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(training.socket)
        s.sendall(p.encode(p.Hello(p.PROTOCOL_VERSION, "fuzz")) + b'{"type":"StopNow","i')
    # A thousand connections opened and dropped, some mid-greeting.
    for n in range(1000):
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(training.socket)
            if n % 2:
                s.sendall(b'{"type":"Hel')
    # Still training, still answering, nothing stopped.
    watched = run(follow(training.socket, lambda w: len(w.epochs) >= 1))
    assert watched.now.phase is Phase.TRAINING
    assert training.process.poll() is None
    log = Path(watched.welcome.engine.run, "engine.log").read_text()
    assert "sent a line over" in log and "bad message" in log


def test_a_stuck_viewer_is_dropped_and_never_slows_training(training: SpawnedEngine) -> None:
    log = Path(run(follow(training.socket, lambda w: True)).welcome.engine.run, "engine.log")
    before = steps_trained(training.socket, 3)
    # A viewer that greets, asks for a megabyte of test images and never reads the answer: the
    # engine's write to it stalls, and after its write timeout the engine drops it.
    stuck = socket.socket(socket.AF_UNIX)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(training.socket)
    stuck.sendall(p.encode(p.Hello(p.PROTOCOL_VERSION, "stuck")))
    stuck.sendall(p.encode(p.GetTestImages(id=1)))
    try:
        number = re.search(r"viewer (\d+)", logged_within(log, r"connected \(stuck\)", 30))
        assert number is not None
        during = steps_trained(training.socket, 3)
        dropped = logged_within(log, rf"viewer {number[1]}\b.*(not reading|stopped reading)", 60)
    finally:
        stuck.close()
    assert "dropped" in dropped or "dropping" in dropped
    assert during >= before * 0.5, (before, during)


def fill_backlog(path: str, most: int = 20_000) -> list[socket.socket]:
    """Connections to `path` until its listener's backlog is full (Linux says EAGAIN then)."""
    fillers: list[socket.socket] = []
    while len(fillers) < most:
        filler = socket.socket(socket.AF_UNIX)
        filler.setblocking(False)
        try:
            filler.connect(path)
        except BlockingIOError:
            filler.close()
            return fillers
        fillers.append(filler)
    raise AssertionError(f"the backlog of {path} never filled")


def test_a_viewer_waits_while_the_engines_backlog_is_full(training: SpawnedEngine) -> None:
    """Linux answers a non-blocking connect to a full AF_UNIX backlog with EAGAIN, which asyncio
    takes for a connection in progress (CPython gh-117208): a viewer that tried then held a socket
    that was never connected and failed with "did not answer (Invalid argument)". It must wait for
    room instead, as it would for a slow answer."""
    # Stopped, the engine accepts nothing: its backlog fills and stays full.
    training.process.send_signal(signal.SIGSTOP)
    fillers: list[socket.socket] = []
    try:
        fillers = fill_backlog(training.socket)

        async def connect_while_full() -> tuple[p.Welcome, int]:
            tries: list[str] = []
            first_try = asyncio.Event()

            def on_connect(address: str) -> None:
                if address == training.socket:
                    tries.append(address)
                    first_try.set()

            CONNECT_ATTEMPTS.append(on_connect)
            try:
                connect = EngineClient.connect(training.socket, "test", timeout=60)
                connecting = asyncio.ensure_future(connect)
                # The audit hook runs just before the viewer's connect(2) and this wakes only once
                # the viewer has yielded, so its first try met the full backlog.
                tried = asyncio.ensure_future(first_try.wait())
                await asyncio.wait({connecting, tried}, return_when=asyncio.FIRST_COMPLETED)
                tried.cancel()
                training.process.send_signal(signal.SIGCONT)
                client = await connecting
            finally:
                CONNECT_ATTEMPTS.clear()
            await client.close()
            return client.welcome, len(tries)

        welcome, tries = run(connect_while_full())
    finally:
        training.process.send_signal(signal.SIGCONT)
        for filler in fillers:
            filler.close()
    assert tries >= 2, "the first try did not meet a full backlog"
    assert welcome.snapshot.phase is Phase.TRAINING


def test_a_backlog_that_stays_full_is_said_in_a_line(tmp_path: Path) -> None:
    path = str(tmp_path / "busy.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen(0)  # and never accepts
        fillers = fill_backlog(path)
        try:
            with pytest.raises(EngineUnavailable, match=r"not taking viewers .*full for 0.3 s"):
                run(EngineClient.connect(path, "test", timeout=0.3))
        finally:
            for filler in fillers:
                filler.close()


# --- viewers -------------------------------------------------------------------------------------
def test_two_viewers_see_the_same_and_one_steers_for_both(training: SpawnedEngine) -> None:
    async def both() -> tuple[int, int, int]:
        first = await EngineClient.connect(training.socket, "first")
        second = await EngineClient.connect(training.socket, "second")
        seen: list[list[TrainingEvent]] = [[], []]
        readers = [
            asyncio.ensure_future(first.run(seen[0].append)),
            asyncio.ensure_future(second.run(seen[1].append)),
        ]
        target = first.welcome.snapshot.target
        reply = await first.request(p.SetTarget, delta=-1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            targets = [
                [e.target for e in events if type(e).__name__ == "TargetChanged"] for events in seen
            ]
            if all(targets):
                break
            await asyncio.sleep(0.02)
        for client in (first, second):
            await client.close()
        for reader in readers:
            reader.cancel()
        assert isinstance(reply.value, p.Target)
        return target, targets[0][-1], targets[1][-1]

    before, one, other = run(both())
    assert one == other == before - 1


def test_a_killed_viewer_leaves_training_at_its_pace(training: SpawnedEngine) -> None:
    code = (
        "import asyncio, sys; from tui.engine.client import EngineClient\n"
        "async def main():\n"
        "    c = await EngineClient.connect(sys.argv[1], 'doomed')\n"
        "    print('connected', flush=True); await c.run(lambda e: None)\n"
        "asyncio.run(main())\n"
    )
    import subprocess

    before = steps_trained(training.socket, 3)
    viewer = subprocess.Popen(
        [sys.executable, "-c", code, training.socket], stdout=subprocess.PIPE, text=True
    )
    assert viewer.stdout is not None and viewer.stdout.readline().strip() == "connected"
    viewer.kill()
    viewer.wait()
    after = steps_trained(training.socket, 3)
    assert after >= before * 0.5, (before, after)
    assert training.process.poll() is None


def test_stop_after_the_epoch_from_a_viewer(tmp_path: Path) -> None:
    engine = start(tmp_path, train=True)
    watched = run(follow(engine.socket, lambda w: w.progress > 0))
    reply = run(command(engine.socket, p.StopAfterEpoch))
    assert not reply.error
    assert engine.process.wait(120) == 0, "an engine with nothing to do and nobody watching ends"
    run_dir = Path(watched.now.run)
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    epochs = [int(row["epoch"]) for row in rows]
    assert epochs == list(range(len(epochs))) and epochs, "each epoch recorded once"
    assert not (run_dir / "engine.json").exists()
    assert not Path(engine.socket).exists()
    assert registry.find_engine(run_dir.name) is None


def test_a_killed_engine_leaves_its_run_resumable(tmp_path: Path) -> None:
    engine = start(tmp_path, train=True)
    run_dir = run(follow(engine.socket, lambda w: len(w.epochs) >= 2)).now.run
    engine.process.kill()
    engine.process.wait()
    with pytest.raises(EngineUnavailable):
        run(EngineClient.connect(engine.socket, "late"))
    assert all(i.pid != engine.pid for i in registry.live_engines())
    # A new engine opens the run where its last complete epoch left it, and takes its lock.
    again = start(tmp_path, resume=run_dir)
    reopened = run(
        follow(again.socket, lambda w: w.now.phase is Phase.READY and bool(w.now.run))
    ).now
    assert reopened.run == run_dir
    assert reopened.epochs_done >= 2
    assert stop(again) == 0


def test_a_runs_directory_with_a_long_path_works(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    assert len(str(deep)) > 150
    engine = start(deep, hparams=TINY.with_changes(epochs=1), train=True)
    watched = run(follow(engine.socket, lambda w: bool(w.now.history)))
    assert watched.now.run.startswith(str(deep))
    assert engine.process.wait(120) == 0
    assert len(list((deep / "runs").iterdir())) == 1


def test_viewers_get_events_in_the_order_the_controller_published_them(
    mnist_small: MnistData,
) -> None:
    """An event published on the loop's own thread (a command) must not overtake one a
    training thread published just before it and that still waits for the loop."""
    with LocalEngine(TINY, mnist_small) as engine:
        controller = engine.controller

        def on_the_loop() -> None:
            earlier = threading.Thread(target=lambda: controller.publish(TargetChanged(5, 5)))
            earlier.start()
            earlier.join()  # queued for the loop, which is busy right here
            controller.publish(TargetChanged(9, 9))

        engine.on_loop(on_the_loop)

        async def welcome() -> p.Welcome:
            client = await EngineClient.connect(engine.socket, "late")
            await client.close()
            return client.welcome

        seen = run(welcome())
        assert controller.snapshot.target == 9
        assert seen.snapshot.target == 9, "the viewer's state went out of step"


def test_an_answer_the_viewer_cannot_read_fails_its_request_instead_of_hanging() -> None:
    """A NaN in an answer reaches the viewer as null, which a float field refuses."""
    zeros = np.zeros((28, 28), np.float32)
    tile = p.Tile("conv1", 0, math.nan, pack(zeros[:1, :1]))
    broken = p.Explanation(pack(zeros[0, :10]), 0, pack(zeros), (tile,))

    async def ask(socket_path: str) -> str:
        client = await EngineClient.connect(socket_path, "test")
        reader = asyncio.ensure_future(client.run(lambda e: None))
        try:
            await asyncio.wait_for(client.request(p.Explain, index=0), 30)
        except EngineUnavailable as err:
            return str(err)
        finally:
            await client.close()
            reader.cancel()
        return "answered"

    scripted = ScriptedEngine(
        initial_snapshot(TINY, "tiny"), responder=lambda command: p.Reply(command.id, value=broken)
    )
    with scripted:
        reason = run(ask(scripted.socket))
    assert "answer was not understood" in reason


def test_an_array_crosses_the_wire_with_its_dtype_and_shape() -> None:
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    sent = p.Arrays(pack(images, "uint8"), pack([3, 7], "uint8"), version=2)
    reply = p.decode_server(p.encode(p.Reply(5, value=sent)))
    assert isinstance(reply, p.Reply) and isinstance(reply.value, p.Arrays)
    np.testing.assert_array_equal(unpack(reply.value.values, None, 28, 28), images)
    assert reply.value.labels is not None
    assert unpack(reply.value.labels).tolist() == [3, 7]
    with pytest.raises(ValueError, match="expected a n x 10 array, got 2 x 28 x 28"):
        unpack(reply.value.values, None, 10)


def test_an_array_whose_bytes_do_not_fit_its_shape_is_a_bad_message() -> None:
    line = p.encode(p.Classify(id=3, pixels=pack(np.zeros((28, 28), np.float32))))
    torn = line.replace(b'"shape":[28,28]', b'"shape":[28,29]')
    with pytest.raises(p.ProtocolError, match="is 3248 bytes, not 3136"):
        p.decode_client(torn)
    assert p.command_id(torn) == 3
