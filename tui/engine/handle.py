"""The viewer's one way to its engine: awaitable requests, arrays unpacked, one error path.

The app and every screen ask the engine through an `EngineHandle`. Whatever goes wrong (no
engine yet or any more, an error reply, no answer in time, an answer that is not what was asked)
becomes one notification and `None`; a request whose asker is cancelled (a screen closed, a
newer drawing) is dropped without a word, and its late reply is ignored by the client.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, TypeVar

from tui.engine import protocol as p
from tui.engine.arrays import Array, pack, unpack
from tui.engine.client import EngineClient, EngineUnavailable

if TYPE_CHECKING:
    import numpy as np

    from tui.core.experiments.doubt import TrainingAudit
    from tui.core.inspect.predictions import Predictions

Severity: TypeAlias = Literal["information", "warning", "error"]
Notify: TypeAlias = Callable[[str, Severity], None]
T = TypeVar("T")

SLOW_ANSWER = 60.0
"""Seconds a screen waits for the model (SmoothGrad on a busy CPU takes a second or two)."""
NOT_ANSWERING = 5.0
"""Seconds without a line from the engine (it sends a heartbeat every second) after which it
counts as not answering: stopped, swapped out or hung."""
AUDIT_ANSWER = 600.0
"""Seconds the training-digits screen waits for the audit (full MNIST: 7-13 s on a busy core)."""


@dataclass(frozen=True)
class Tile:
    """One feature map of a conv layer."""

    layer: str
    channel: int
    mean: float
    values: np.ndarray = field(repr=False)
    """(height, width) in [0, 1]."""


@dataclass(frozen=True)
class Seen:
    """What the model looks at in one digit."""

    probabilities: np.ndarray
    class_index: int
    """The class `saliency` explains."""
    saliency: np.ndarray
    """(28, 28) in [0, 1]."""
    tiles: list[Tile]


@dataclass(frozen=True)
class TrainingDigits:
    """The training-set audit as the engine sent it, with the images it is about."""

    audit: TrainingAudit
    images: np.ndarray = field(repr=False)
    """(n, 28, 28) uint8, in training-index order."""
    reused: bool
    recorded: str
    """The run's audit.npz that keeps it; empty when nothing was kept."""
    seconds: float
    marked: tuple[int, ...]
    """The digits the run keeps marked to leave out."""
    left_out: tuple[int, ...]
    """The digits the model's data already leaves out."""


class EngineHandle:
    """The engine as the viewer sees it: `client` while connected, None before and after."""

    def __init__(self, notify: Notify) -> None:
        self.client: EngineClient | None = None
        self.notify = notify

    def silence(self) -> float:
        """Seconds the engine has said nothing once that is past `NOT_ANSWERING`; 0 while it
        answers (or when there is no engine: that is said otherwise)."""
        client = self.client
        if client is None:
            return 0.0
        silent = client.silent_for
        return silent if silent >= NOT_ANSWERING else 0.0

    async def command(
        self,
        kind: type[p.Command],
        *,
        quiet: bool = False,
        timeout: float | None = None,
        **fields: Any,
    ) -> p.Reply | None:
        """Send a command and wait for its reply; None (and one notification unless `quiet`)
        when it was not carried out."""
        problem, severity = await self._ask(kind, timeout, fields)
        if isinstance(problem, p.Reply):
            return problem
        if not quiet:
            self.notify(problem, severity)
        return None

    async def _ask(
        self, kind: type[p.Command], timeout: float | None, fields: dict[str, Any]
    ) -> tuple[p.Reply | str, Severity]:
        client = self.client
        if client is None:
            return "Not connected to an engine.", "warning"
        silent = self.silence()
        if silent:
            # Sent now, it would act whenever the engine wakes: later than anyone expects.
            return (
                f"The engine (pid {client.engine.pid}) has not answered for {silent:.0f} s, so "
                "nothing was sent; try again once it answers.",
                "warning",
            )
        try:
            reply = await asyncio.wait_for(client.request(kind, **fields), timeout)
        except TimeoutError:
            return f"No answer from the engine in {timeout:.0f} s.", "error"
        except EngineUnavailable as err:
            return str(err).capitalize() + ".", "error"
        if reply.error:
            return reply.error, "warning"
        return reply, "information"

    async def _value(
        self, kind: type[p.Command], read: Callable[[Any], T], *, quiet: bool = False, **fields: Any
    ) -> T | None:
        """The reply's value as `read` makes it; an answer of the wrong kind or shape is one
        notification (unless `quiet`) and None, as a failed request is."""
        reply = await self.command(kind, quiet=quiet, **fields)
        if reply is None:
            return None
        try:
            return read(reply.value)
        except (TypeError, ValueError) as err:
            if not quiet:
                self.notify(
                    f"The engine's answer to {kind.__name__} is not usable: {err}.", "error"
                )
            return None

    async def predictions(self) -> Predictions | None:
        """The current model's test-set predictions; None (quietly) when there are none."""

        def read(value: object) -> Predictions:
            from tui.core.inspect.predictions import Predictions

            arrays = _arrays(value)
            labels = unpack(_labels(arrays), None)
            return Predictions(unpack(arrays.values, len(labels), 10), labels)

        return await self._value(p.GetPredictions, read, quiet=True)

    async def test_images(self) -> np.ndarray | None:
        """The engine's test images, (n, 28, 28) uint8; None (quietly) before MNIST is loaded."""
        return await self._value(
            p.GetTestImages, lambda value: unpack(_arrays(value).values, None, 28, 28), quiet=True
        )

    async def classify(self, images: np.ndarray) -> np.ndarray | None:
        """(n, 10) probabilities for (n, 28, 28[, 1]) float images in [0, 1] (drawings)."""
        pixels = pack(images.reshape(len(images), 28, 28))
        return await self._value(
            p.Classify,
            lambda value: unpack(_arrays(value).values, len(images), 10),
            pixels=pixels,
            timeout=SLOW_ANSWER,
        )

    async def explain(
        self, index: int | None, image: np.ndarray | None, class_index: int | None, method: str
    ) -> Seen | None:
        """What the model looks at in test digit `index`, or in the drawn `image`."""
        pixels = None if image is None else pack(image.reshape(28, 28))

        def read(value: object) -> Seen:
            if not isinstance(value, p.Explanation):
                raise TypeError("no explanation came back")
            return Seen(
                unpack(value.probabilities, 10),
                value.class_index,
                unpack(value.saliency, 28, 28),
                [
                    Tile(t.layer, t.channel, t.mean, unpack(t.values, None, None))
                    for t in value.tiles
                ],
            )

        return await self._value(
            p.Explain,
            read,
            index=index,
            pixels=pixels,
            class_index=class_index,
            method=method,
            timeout=SLOW_ANSWER,
        )

    async def training_digits(self) -> TrainingDigits | str:
        """The audit of every training digit under the current model; else the sentence why
        not (no model, training, no engine), for the screen to show in its place."""
        answer, _ = await self._ask(p.AuditTraining, AUDIT_ANSWER, {})
        if not isinstance(answer, p.Reply):
            return answer
        try:
            return _training_digits(answer.value)
        except (TypeError, ValueError) as err:
            return f"The engine's answer to AuditTraining is not usable: {err}."

    async def clusters(self) -> np.ndarray | None:
        """The test set's features projected to two dimensions, (n, 2)."""
        return await self._value(
            p.GetClusters, lambda value: unpack(_arrays(value).values, None, 2), timeout=SLOW_ANSWER
        )


def _training_digits(value: object) -> TrainingDigits:
    from tui.core.experiments.doubt import TrainingAudit

    if not isinstance(value, p.TrainingFigures):
        raise TypeError("no training figures came back")
    labels = unpack(value.labels, None)
    count = len(labels)
    try:
        pixels = zlib.decompress(value.images)
    except zlib.error as err:
        raise ValueError(f"the images are damaged ({err})") from None
    images = unpack(Array("uint8", (count, 28, 28), pixels))
    audit = TrainingAudit(
        value.model_file, value.epoch, "", "", labels, unpack(value.probabilities, count, 10)
    )
    return TrainingDigits(
        audit, images, value.reused, value.recorded, value.seconds, value.marked, value.left_out
    )


def _arrays(value: object) -> p.Arrays:
    if not isinstance(value, p.Arrays):
        raise TypeError("no arrays came back")
    return value


def _labels(arrays: p.Arrays) -> Array:
    if arrays.labels is None:
        raise TypeError("the labels are missing")
    return arrays.labels
