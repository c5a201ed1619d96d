"""The engine side of the socket: viewers in, the controller's events out.

One asyncio loop serves every viewer. The controller publishes on the training thread; each
event crosses into the loop once, is folded into the loop's own snapshot, and is queued for
every viewer. A viewer that connects gets that snapshot and then exactly the events after it.

A viewer can never slow training down: its queue is bounded, progress replaces progress
already queued (only the newest figures matter), and one that stops reading is dropped, not
waited for. Bad input (garbage, a line over the limit, unknown commands, wrong types) is
answered or dropped and logged; training goes on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import socket
import struct
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tui.branch import claim_branch_at, claim_round
from tui.core.training.controller import ControllerError, Job, TrainingController
from tui.core.training.events import BatchProgress, PhaseChanged, TrainingEvent
from tui.core.training.phase import BUSY
from tui.core.training.snapshot import Snapshot, advance
from tui.engine import protocol as p
from tui.engine import training_data
from tui.engine.arrays import Array, pack, unpack

log = logging.getLogger("mnist_tui.engine")
T = TypeVar("T")

QUEUE_LIMIT = 2000
"""Messages waiting for one viewer before it counts as stuck and is dropped."""
HELLO_TIMEOUT = 10.0
"""Seconds a new connection has to say `Hello`."""
WRITE_TIMEOUT = 10.0
"""Seconds one write may wait for a viewer's socket to drain before the viewer is dropped."""


class Viewer:
    """One connected viewer: its outgoing queue and the task that drains it."""

    def __init__(self, number: int, writer: asyncio.StreamWriter, pid: int | None) -> None:
        self.number = number
        self.writer = writer
        self.pid = pid
        self.queue: deque[bytes | TrainingEvent] = deque()
        self.wake = asyncio.Event()
        self.closed = False

    def __repr__(self) -> str:
        return f"viewer {self.number}" + (f" (pid {self.pid})" if self.pid else "")

    def send(self, item: bytes | TrainingEvent) -> bool:
        """Queue `item`; False when the queue is full (the viewer has stopped reading)."""
        if self.closed:
            return True
        if (
            isinstance(item, BatchProgress)
            and self.queue
            and isinstance(self.queue[-1], BatchProgress)
        ):
            self.queue[-1] = item  # only the newest figures matter
        elif len(self.queue) >= QUEUE_LIMIT:
            return False
        else:
            self.queue.append(item)
        self.wake.set()
        return True


class EngineServer:
    """Serves one controller on a Unix socket until it is told to finish."""

    def __init__(self, controller: TrainingController, info: p.EngineInfo) -> None:
        self.controller = controller
        self.info = info
        self.viewers: set[Viewer] = set()
        self.jobs = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine-job")
        """Loading, rounds, opening: one at a time, in order."""
        self.helpers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="engine-helper")
        """Saving, arrays for viewers, drawings: beside a running round."""
        self.finished = asyncio.Event()
        self.ever_connected = False
        self.shutdown_requested = False
        self._server: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._snapshot: Snapshot | None = None
        self._outbox: collections.deque[TrainingEvent] = collections.deque()
        """Controller events not yet sent, in the order they were published."""
        self._unsubscribe: Callable[[], None] | None = None
        self._numbers = 0
        self._socket_inode: int | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    # --- starting and stopping ----------------------------------------------------------------
    async def start(self) -> None:
        """Bind the socket (mode 0600) and start taking the controller's events."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        await self._bind()
        snapshot, self._unsubscribe = self.controller.subscribe(self._from_controller)
        self._snapshot = snapshot
        log.info("serving on %s", self.info.socket)

    def run_job(self, job: Job[Any]) -> asyncio.Future[Any]:
        """Run claimed work on the job thread; failures are logged, never raised here."""
        assert self._loop is not None
        future = self._loop.run_in_executor(self.jobs, job.run)
        future.add_done_callback(self._job_done)
        return future

    def _job_done(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            log.error("job failed: %r", future.exception())
        self.check_idle()

    def finish(self, reason: str) -> None:
        if self.finished.is_set():
            return
        log.info("finishing: %s", reason)
        for viewer in list(self.viewers):
            viewer.send(p.encode(p.Closing(reason)))
        self.finished.set()

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._server is not None:
            self._server.close()
        for viewer in list(self.viewers):
            await self._drop(viewer, "the engine is ending")
        with contextlib.suppress(FileNotFoundError):
            if Path(self.info.socket).stat().st_ino == self._socket_inode:
                Path(self.info.socket).unlink()
        self.helpers.shutdown(wait=False, cancel_futures=True)
        self.jobs.shutdown(wait=False, cancel_futures=True)

    def check_idle(self) -> None:
        """End once nothing runs and nobody watches (or a viewer asked to shut down)."""
        if self._snapshot is None:
            return
        idle = self._snapshot.phase not in BUSY
        if idle and not self.viewers and (self.ever_connected or self.shutdown_requested):
            self.finish("no viewer and nothing running")

    async def keep_socket(self, every: float = 1.0) -> None:
        """Bind again if the socket file disappears: systemd removes $XDG_RUNTIME_DIR when the
        user's last session ends, which is exactly when a detached training must stay
        reachable."""
        path = Path(self.info.socket)
        while not self.finished.is_set():
            await asyncio.sleep(every)
            try:
                inode = path.stat().st_ino
            except FileNotFoundError:
                inode = None
            if inode == self._socket_inode:
                continue
            log.warning("socket %s vanished; binding it again", path)
            with contextlib.suppress(OSError):
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                if self._server is not None:
                    self._server.close()
                await self._bind()

    async def beat(self, every: float = p.HEARTBEAT_INTERVAL) -> None:
        """A `Heartbeat` to each viewer with nothing else on its way: silence then means the
        engine is not answering, not that nothing happens."""
        beat = p.encode(p.Heartbeat())
        while not self.finished.is_set():
            await asyncio.sleep(every)
            for viewer in list(self.viewers):
                if not viewer.queue:
                    viewer.send(beat)

    async def _bind(self) -> None:
        """Listen on the socket path, which appears only once the engine listens: bound under
        a temporary name and renamed, so a viewer that sees the file can connect at once."""
        path = Path(self.info.socket)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        old_mask = os.umask(0o177)  # the socket is born 0600: no moment when others can connect
        try:
            self._server = await asyncio.start_unix_server(
                self._connected, path=str(temporary), limit=p.MAX_COMMAND_BYTES, backlog=512
            )
        finally:
            os.umask(old_mask)
        os.replace(temporary, path)
        self._socket_inode = path.stat().st_ino

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- events out -----------------------------------------------------------------------------
    def _from_controller(self, event: TrainingEvent) -> None:
        """The controller's listener: any thread, under the controller's lock; never blocks.

        Events wait in one queue in the order the controller published them. On the loop's own
        thread (a command being carried out) the queue is sent at once, so that what a command
        changed reaches its viewer before the command's reply does, and after anything a
        training thread published before it.
        """
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        self._outbox.append(event)
        if threading.get_ident() == self._loop_thread:
            self._send_outbox()
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._send_outbox)

    def _send_outbox(self) -> None:
        while self._outbox:
            self._broadcast(self._outbox.popleft())

    def _broadcast(self, event: TrainingEvent) -> None:
        assert self._snapshot is not None
        self._snapshot = advance(self._snapshot, event)
        for viewer in list(self.viewers):
            if not viewer.send(event):
                log.warning("%r stopped reading; dropping it", viewer)
                self._spawn(self._drop(viewer, "it stopped reading"))
        if isinstance(event, PhaseChanged):
            self.check_idle()

    # --- viewers in -----------------------------------------------------------------------------
    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pid = _peer(writer)
        if pid is False:
            log.warning("refused a connection from another user")
            writer.close()
            return
        self._numbers += 1
        viewer = Viewer(self._numbers, writer, pid or None)
        try:
            if not await self._greet(viewer, reader):
                return
            sender = asyncio.ensure_future(self._send_loop(viewer))  # awaited via cancel below
            try:
                await self._read_loop(viewer, reader)
            finally:
                sender.cancel()
        finally:
            await self._drop(viewer, "")

    async def _greet(self, viewer: Viewer, reader: asyncio.StreamReader) -> bool:
        try:
            line = await asyncio.wait_for(reader.readline(), HELLO_TIMEOUT)
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            log.info("%r said nothing usable; dropped", viewer)
            return False
        if not line:
            return False
        try:
            hello = p.decode_client(line)
        except p.ProtocolError as err:
            await self._write_now(viewer, p.Refused(f"the first line must be Hello: {err}"))
            log.info("%r: no Hello (%s); dropped", viewer, err)
            return False
        if not isinstance(hello, p.Hello):
            await self._write_now(viewer, p.Refused("the first line must be Hello"))
            return False
        if hello.version != p.PROTOCOL_VERSION:
            await self._write_now(
                viewer,
                p.Refused(
                    f"this engine speaks protocol {p.PROTOCOL_VERSION} and the viewer "
                    f"{hello.version}: use the same mnist-tui version for both"
                ),
            )
            log.info("%r speaks protocol %d; refused", viewer, hello.version)
            return False
        assert self._snapshot is not None
        # No await between the snapshot and joining the viewers: no event can fall in between.
        viewer.send(p.encode(p.Welcome(p.PROTOCOL_VERSION, self.info, self._snapshot)))
        self.viewers.add(viewer)
        self.ever_connected = True
        log.info("%r connected (%s)", viewer, hello.client)
        return True

    async def _write_now(self, viewer: Viewer, message: p.Message) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            viewer.writer.write(p.encode(message))
            await asyncio.wait_for(viewer.writer.drain(), WRITE_TIMEOUT)

    async def _send_loop(self, viewer: Viewer) -> None:
        encode = p.encode
        while not viewer.closed:
            await viewer.wake.wait()
            viewer.wake.clear()
            chunks = []
            while viewer.queue:
                item = viewer.queue.popleft()
                chunks.append(item if isinstance(item, bytes) else encode(item))
            if not chunks:
                continue
            try:
                viewer.writer.write(b"".join(chunks))
                await asyncio.wait_for(viewer.writer.drain(), WRITE_TIMEOUT)
            except (ConnectionError, TimeoutError, RuntimeError):
                log.info("%r is not reading (or gone); dropped", viewer)
                self._spawn(self._drop(viewer, "it stopped reading"))
                return

    async def _read_loop(self, viewer: Viewer, reader: asyncio.StreamReader) -> None:
        while not viewer.closed:
            try:
                line = await reader.readline()
            except ValueError:
                log.warning("%r sent a line over %d bytes; dropped", viewer, p.MAX_COMMAND_BYTES)
                viewer.send(p.encode(p.Closing("a line over the size limit")))
                await asyncio.sleep(0)
                return
            except ConnectionError:
                return
            if not line:
                return  # the viewer hung up (a half-written line is discarded)
            if not line.endswith(b"\n"):
                return
            if not line.strip():
                continue
            viewer.send(p.encode(await self._answer(viewer, line)))

    async def _answer(self, viewer: Viewer, line: bytes) -> p.Reply:
        try:
            command = p.decode_client(line)
        except p.ProtocolError as err:
            log.info("%r sent a bad message: %s", viewer, err)
            return p.Reply(p.command_id(line), error=f"not understood: {err}")
        if isinstance(command, p.Hello):
            return p.Reply(0, error="already greeted")
        try:
            value = await self._carry_out(command)
        except ControllerError as err:
            return p.Reply(command.id, error=str(err))
        except Exception as err:  # a bug must not end the engine: say it, log it
            log.exception("%r: %s failed", viewer, type(command).__name__)
            return p.Reply(command.id, error=f"{type(err).__name__}: {err}")
        return p.Reply(command.id, value=value)

    async def _drop(self, viewer: Viewer, reason: str) -> None:
        if viewer.closed:
            return
        viewer.closed = True
        viewer.wake.set()
        self.viewers.discard(viewer)
        with contextlib.suppress(Exception):
            viewer.writer.close()
        log.info("%r left%s", viewer, f": {reason}" if reason else "")
        self.check_idle()

    # --- commands -------------------------------------------------------------------------------
    async def _carry_out(self, command: p.Command) -> p.ReplyValue | None:
        c = self.controller
        match command:
            case p.Train(hparams=hparams, preset=preset):
                self.run_job(claim_round(c, hparams, preset))
            case p.StopNow(by=by):
                c.stop_now(by)
            case p.StopAfterEpoch(by=by):
                c.stop_after_epoch(by)
            case p.Pause(paused=paused):
                if paused is None:
                    return p.PauseState(c.toggle_pause())
                if paused:
                    c.pause()
                else:
                    c.resume()
                return p.PauseState(paused)
            case p.SetTarget(target=target, delta=delta):
                if target is not None:
                    return p.Target(c.set_target(target))
                return p.Target(c.change_target(delta or 0))
            case p.SetLearningRate(learning_rate=rate):
                c.set_learning_rate(rate)
            case p.Reset():
                c.reset()
            case p.OpenRun(path=path):
                self.run_job(c.claim_open_run(path))
            case p.Branch(path=path, epoch=epoch):
                made, job = await self._in_helper(lambda: claim_branch_at(c, path, epoch))
                self.run_job(job)
                return p.Branched(str(made.resolve()))
            case p.OpenModel(path=path):
                self.run_job(c.claim_open_model(path))
            case p.SaveModel(path=path, overwrite=overwrite):
                saved = await self._in_helper(lambda: c.save_model(path, overwrite=overwrite))
                return p.Saved(str(saved))
            case p.GetPredictions():
                return await self._in_helper(self._predictions)
            case p.GetTestImages():
                return await self._in_helper(self._test_images)
            case p.Classify(pixels=pixels):
                return await self._in_helper(lambda: self._classify(pixels))
            case p.Explain(index=index, pixels=drawing, class_index=wanted, method=method):
                return await self._in_helper(lambda: self._explain(index, drawing, wanted, method))
            case p.GetClusters():
                return await self._in_helper(self._clusters)
            case p.AuditTraining():
                return await self._in_helper(lambda: training_data.audit(c))
            case p.SaveLeaveOut(indices=indices):
                await self._in_helper(lambda: training_data.keep_marks(c, indices))
            case p.TrainWithout(indices=indices, hparams=hparams, preset=preset):
                claimed = lambda: training_data.claim_without(c, indices, hparams, preset)  # noqa: E731
                self.run_job(await self._in_helper(claimed))
            case p.Shutdown():
                self.shutdown_requested = True
                c.shutdown()
                self.check_idle()
            case _:
                raise ControllerError(f"{type(command).__name__} is not a command")
        return None

    def _in_helper(self, work: Callable[[], T]) -> Awaitable[T]:
        assert self._loop is not None
        return self._loop.run_in_executor(self.helpers, work)

    def _predictions(self) -> p.Arrays:
        predictions = self.controller.predictions
        if predictions is None:
            raise ControllerError("There are no predictions yet; train (t) or open a model.")
        version = self.controller.snapshot.predictions
        return p.Arrays(
            pack(predictions.probabilities),
            pack(predictions.labels, "uint8"),
            version.version if version else 0,
        )

    def _test_images(self) -> p.Arrays:
        images = self.controller.test_images()
        data = self.controller.data
        if images is None or data is None:
            raise ControllerError("MNIST is not loaded yet.")
        return p.Arrays(pack(images, "uint8"), pack(data.y_test, "uint8"))

    def _classify(self, pixels: Array) -> p.Arrays:
        images = _drawing(pixels, None, 28, 28)
        if not len(images):
            raise ControllerError("Classify needs at least one drawing.")
        probabilities = self.controller.ask(lambda model: model.classify(images[..., np.newaxis]))
        return p.Arrays(pack(probabilities))

    def _explain(
        self, index: int | None, pixels: Array | None, wanted: int | None, method: str
    ) -> p.Explanation:
        data = self.controller.data
        if pixels is not None:
            image = _drawing(pixels, 28, 28)[..., np.newaxis]
        elif index is not None and data is not None and 0 <= index < len(data.x_test):
            image = data.x_test[index]
        else:
            raise ControllerError("Explain needs a test index in range, or a drawing.")
        if method not in ("smoothgrad", "gradient"):
            raise ControllerError(f"{method!r} is not a saliency method (smoothgrad, gradient).")
        found = self.controller.ask(
            lambda model: model.explain(image, wanted, method)  # type: ignore[arg-type]
        )
        tiles = tuple(
            p.Tile(maps.layer, int(channel), float(mean), pack(picture))
            for maps in found.maps
            for channel, mean, picture in zip(maps.channels, maps.means, maps.maps, strict=True)
        )
        return p.Explanation(
            pack(found.probabilities), found.class_index, pack(found.saliency), tiles
        )

    def _clusters(self) -> p.Arrays:
        points = self.controller.ask(lambda model: model.clusters())
        data = self.controller.data
        labels = data.y_test if data is not None else np.zeros(len(points), np.uint8)
        return p.Arrays(pack(points), pack(labels, "uint8"))


def _drawing(pixels: Array, *shape: int | None) -> np.ndarray:
    """A viewer's drawing as float32 pixels in [0, 1], after checking its shape and values."""
    try:
        images = unpack(pixels, *shape)
    except ValueError as err:
        raise ControllerError(f"a drawing is 28 x 28 pixels: {err}") from None
    if pixels.dtype != "float32" or not np.all(np.isfinite(images)):
        raise ControllerError("a drawing must hold finite float32 pixel values")
    clipped: np.ndarray = np.clip(images, 0.0, 1.0)
    return clipped


def _peer(writer: asyncio.StreamWriter) -> int | bool | None:
    """The connecting process's pid, None if unknown, False if it is another user's."""
    sock = writer.get_extra_info("socket")
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, _gid = struct.unpack("3i", raw)
    return pid if uid == os.getuid() else False
