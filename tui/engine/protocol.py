"""The engine's protocol: versioned, typed messages, one JSON object per line.

A viewer sends `Hello` first; the engine answers `Welcome` (its identity and the whole
`Snapshot`), then every event as it happens, and a `Reply` to each command (by its `id`). Every
message is a msgspec `Struct` tagged with its class name, decoded once where the bytes arrive
(`decode_client`, `decode_server`) and validated there: code past that point sees only typed
objects. Nothing is pickled.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from tui.core.settings.hyperparams import Hyperparams
from tui.core.training.events import TrainingEvent
from tui.core.training.snapshot import Snapshot
from tui.engine.arrays import Array

PROTOCOL_VERSION = 7
"""Bumped whenever a message changes shape (2: Hyperparams gained convs_per_block, 3: clean_epochs,
4: layer problems as `LayerProblem`s, 5: arrays travel as `Array`, dtype and shape with the
bytes, 6: the engine's `Heartbeat`, and who asked for a stop, 7: the training-data
audit and runs without some digits); a viewer of another version is refused in a line."""
HEARTBEAT_INTERVAL = 1.0
"""Seconds between the engine's `Heartbeat`s to a viewer that has nothing else queued."""
MAX_COMMAND_BYTES = 1 << 20
"""The longest line the engine reads from a viewer (a drawing is 25 KB); longer: dropped."""
MAX_MESSAGE_BYTES = 64 << 20
"""The longest line a viewer reads from the engine (the test images are about 10 MB)."""


class Message(msgspec.Struct, frozen=True, tag=True):
    """Base of every protocol message."""


# --- viewer to engine ---------------------------------------------------------------------------
class Hello(Message, frozen=True):
    """The first line a viewer sends."""

    version: int
    client: str = "viewer"
    """What the viewer is ("app", "ps", "stop"), for the engine's log."""


class Command(Message, frozen=True):
    id: int
    """Chosen by the viewer; the `Reply` carries it back."""


class Train(Command, frozen=True):
    """`t`: a round with these settings (None: the ones in force)."""

    hparams: Hyperparams | None = None
    preset: str | None = None


class StopNow(Command, frozen=True):
    by: str = ""
    """Who asks and from where, for `mnist-tui stop` (see `login_description`); empty for
    a viewer's key."""


class StopAfterEpoch(Command, frozen=True):
    by: str = ""
    """As `StopNow.by`."""


class Pause(Command, frozen=True):
    """Pause (True), resume (False) or toggle (None)."""

    paused: bool | None = None


class SetTarget(Command, frozen=True):
    """Set the epoch target, or move it by `delta`."""

    target: int | None = None
    delta: int | None = None


class SetLearningRate(Command, frozen=True):
    learning_rate: float


class Reset(Command, frozen=True):
    pass


class OpenRun(Command, frozen=True):
    path: str


class Branch(Command, frozen=True):
    """`b`: open a new run that branches from epoch `epoch` of the run at `path`, with that
    run's settings; `t` then trains it with the ones the viewer changed (see `Branched`)."""

    path: str
    epoch: int


class OpenModel(Command, frozen=True):
    path: str


class SaveModel(Command, frozen=True):
    path: str
    overwrite: bool = True


class GetPredictions(Command, frozen=True):
    """The test-set probabilities of the current model."""


class GetTestImages(Command, frozen=True):
    """The test images and labels the predictions are for."""


class Classify(Command, frozen=True):
    """Probabilities for drawn digits: `pixels` is (count, 28, 28) float32."""

    pixels: Array


class Explain(Command, frozen=True):
    """What the model looks at: test digit `index`, or `pixels` (28 x 28 float32, a drawing)."""

    index: int | None = None
    pixels: Array | None = None
    class_index: int | None = None
    """The class to explain; None for the predicted one."""
    method: str = "smoothgrad"
    """"smoothgrad" or "gradient"."""


class GetClusters(Command, frozen=True):
    """The test set's penultimate features projected to two dimensions."""


class AuditTraining(Command, frozen=True):
    """Every training digit's probabilities under the current model (`TrainingFigures`),
    recorded in its run as `mnist-tui audit` records them."""


class SaveLeaveOut(Command, frozen=True):
    """Keep these training indices in the current run as the digits marked to leave out."""

    indices: tuple[int, ...]


class TrainWithout(Command, frozen=True):
    """A new model and run on the same data without the training digits at `indices`, with
    these settings (None: the ones in force)."""

    indices: tuple[int, ...]
    hparams: Hyperparams | None = None
    preset: str | None = None


class Shutdown(Command, frozen=True):
    """Stop training (within a group of batches) and end the engine once no viewer is left."""


ClientMessage: TypeAlias = (
    Hello
    | Train
    | StopNow
    | StopAfterEpoch
    | Pause
    | SetTarget
    | SetLearningRate
    | Reset
    | OpenRun
    | Branch
    | OpenModel
    | SaveModel
    | GetPredictions
    | GetTestImages
    | Classify
    | Explain
    | GetClusters
    | AuditTraining
    | SaveLeaveOut
    | TrainWithout
    | Shutdown
)


# --- engine to viewer ---------------------------------------------------------------------------
class EngineInfo(msgspec.Struct, frozen=True):
    """Who an engine is and where it lives; also what `engine.json` records."""

    id: str
    pid: int
    socket: str
    started: str
    """ISO time the engine started."""
    version: str
    """mnist-tui's version."""
    protocol: int = PROTOCOL_VERSION
    log: str = ""
    runs_root: str = ""
    run: str = ""
    """The run directory it trains into (updated as that changes)."""


class Welcome(Message, frozen=True):
    version: int
    engine: EngineInfo
    snapshot: Snapshot


class Refused(Message, frozen=True):
    """The engine will not talk to this viewer (another protocol version, no `Hello`)."""

    reason: str


class Closing(Message, frozen=True):
    """The engine is about to end or to drop this viewer, and why."""

    reason: str


class Heartbeat(Message, frozen=True):
    """The engine is alive and answering, though nothing happens: a viewer that hears no line
    for several `HEARTBEAT_INTERVAL`s knows it is stopped (SIGSTOP), swapped out or hung."""


class Target(msgspec.Struct, frozen=True, tag=True):
    target: int


class PauseState(msgspec.Struct, frozen=True, tag=True):
    paused: bool


class Saved(msgspec.Struct, frozen=True, tag=True):
    path: str


class Arrays(msgspec.Struct, frozen=True, tag=True):
    """Test-set arrays: `values` are the probabilities (n x 10 float32), the images (n x 28 x 28
    uint8) or the projected points (n x 2 float32); `labels` the n true classes (uint8)."""

    values: Array
    labels: Array | None = None
    version: int = 0
    """Which predictions these are (`PredictionsReady.version`); 0 for the rest."""


class Tile(msgspec.Struct, frozen=True):
    """One feature map: `values` is height x width float32 in [0, 1]."""

    layer: str
    channel: int
    mean: float
    values: Array


class Explanation(msgspec.Struct, frozen=True, tag=True):
    probabilities: Array
    """10 float32."""
    class_index: int
    saliency: Array
    """28 x 28 float32 in [0, 1]."""
    tiles: tuple[Tile, ...]


class Branched(msgspec.Struct, frozen=True, tag=True):
    """The branch `Branch` made: its run directory, opening now (a `RunOpened` follows, or a
    `Notice` saying why it could not open, and then the directory is gone)."""

    path: str


class TrainingFigures(msgspec.Struct, frozen=True, tag=True):
    """The training-set audit: the whole training source, digits left out included."""

    probabilities: Array
    """n x 10 float32."""
    labels: Array
    """n uint8."""
    images: bytes
    """The n x 28 x 28 uint8 images, zlib-compressed (full MNIST: 47 MB raw, about 10 packed;
    raw, they would not fit `MAX_MESSAGE_BYTES` beside the rest)."""
    model_file: str
    epoch: int
    reused: bool
    """Read back from the run's audit.npz."""
    recorded: str = ""
    """The audit.npz that keeps it; empty when nothing was kept (no run file holds the model)."""
    seconds: float = 0.0
    marked: tuple[int, ...] = ()
    """The digits the run keeps marked to leave out (before any marks: those `left_out`)."""
    left_out: tuple[int, ...] = ()
    """The digits the model's data already leaves out."""


ReplyValue: TypeAlias = (
    Target | PauseState | Saved | Arrays | Explanation | Branched | TrainingFigures
)


class Reply(Message, frozen=True):
    id: int
    error: str = ""
    """Empty when the command was carried out (or accepted, for the long ones); else why not."""
    value: ReplyValue | None = None


ServerMessage: TypeAlias = Welcome | Refused | Closing | Heartbeat | Reply | TrainingEvent


class _Version(msgspec.Struct):
    """What any version's first engine line has in common: read before the whole `Welcome`."""

    version: int = 0


_encoder = msgspec.json.Encoder()
_client_decoder = msgspec.json.Decoder(ClientMessage)
_server_decoder = msgspec.json.Decoder(ServerMessage)
_version_decoder = msgspec.json.Decoder(_Version)


class ProtocolError(Exception):
    """A line that is not a valid message; str(err) says what is wrong with it."""


def encode(message: msgspec.Struct) -> bytes:
    """One line: the message as JSON, then a newline."""
    return _encoder.encode(message) + b"\n"


def decode_client(line: bytes) -> ClientMessage:
    try:
        return _client_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ProtocolError(str(err)) from None


def decode_server(line: bytes) -> ServerMessage:
    try:
        return _server_decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError) as err:
        raise ProtocolError(str(err)) from None


def version_of(line: bytes) -> int:
    """The protocol version a first engine line declares (0 when it declares none)."""
    try:
        return _version_decoder.decode(line).version
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 0


def command_id(line: bytes) -> int:
    """The `id` of a line that failed to decode, if it has a usable one (else 0)."""
    try:
        raw = msgspec.json.decode(line)
    except msgspec.DecodeError:
        return 0
    value = raw.get("id") if isinstance(raw, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
