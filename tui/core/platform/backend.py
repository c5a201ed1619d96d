"""The Keras backend seam: which backend runs (TensorFlow, JAX or PyTorch), choosing it before
Keras loads, what each offers, and the one computation Keras has no neutral API for (a gradient
with respect to the input)."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the command line reads this module; NumPy loads with the backend
    import numpy as np

BACKENDS = ("tensorflow", "jax", "torch")
"""Keras backends mnist-tui runs on; the first is the default."""
KERAS_BACKEND = "KERAS_BACKEND"
"""The environment variable Keras reads once, when it is first imported."""
_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class BackendError(ValueError):
    """A backend that is unknown, not installed, or asked for after Keras chose another."""


def requested_backend(environ: dict[str, str] | None = None) -> str:
    """The backend Keras will load (or has loaded): KERAS_BACKEND, else TensorFlow."""
    env = os.environ if environ is None else environ
    return env.get(KERAS_BACKEND, "").strip() or BACKENDS[0]


def installed(name: str) -> bool:
    """Whether the backend's own package can be imported here (without importing it)."""
    return importlib.util.find_spec(_MODULES.get(name, name)) is not None


def check_backend(name: str) -> str:
    """`name` when mnist-tui can run on it here.

    Raises:
        BackendError: an unknown name, or a backend whose package is not installed.
    """
    if name not in BACKENDS:
        raise BackendError(f"backend {name!r} is not one of: {', '.join(BACKENDS)}.")
    if not installed(name):
        raise BackendError(
            f"the {name} backend is not installed here; install {_MODULES[name]} "
            f"or choose one of: {', '.join(b for b in BACKENDS if installed(b)) or 'none'}."
        )
    return name


def select_backend(name: str) -> None:
    """Make Keras load `name`; must run before Keras is first imported in this process.

    It is set in this process's environment, so an engine started from here inherits it.

    Raises:
        BackendError: see `check_backend`, or Keras already loaded another backend.
    """
    check_backend(name)
    keras = sys.modules.get("keras")
    if keras is not None:
        loaded = keras.backend.backend()
        if loaded != name:
            raise BackendError(
                f"Keras already runs on {loaded} in this process; choose the backend "
                f"(--backend {name} or KERAS_BACKEND={name}) before anything loads Keras."
            )
    os.environ[KERAS_BACKEND] = name


def share_the_gpu() -> None:
    """Let JAX take GPU memory as it needs it, as TensorFlow's memory growth does, rather than
    75% of the card at start-up; must run before JAX is imported (an explicit setting wins)."""
    if requested_backend() == "jax":
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")


def strategy_refusal(backend: str, strategy: str) -> str:
    """The one line that refuses a tf.distribute strategy on another backend, and what instead."""
    instead = {
        "jax": "JAX spreads a batch over its devices with keras.distribution.DataParallel, "
        "which mnist-tui does not drive yet",
        "torch": "on PyTorch mnist-tui trains on one device per process",
    }.get(backend, f"Keras runs on {backend}")
    return (
        f"--strategy {strategy} is tf.distribute, on the TensorFlow backend only; {instead}. "
        "Train with --backend tensorflow to use it."
    )


def backend_version(name: str) -> str:
    """The installed version of a backend's package, e.g. "0.4.35"."""
    module = sys.modules.get(_MODULES[name]) or importlib.import_module(_MODULES[name])
    return str(getattr(module, "__version__", "?"))


def display_name(name: str) -> str:
    """ "TensorFlow", "JAX" or "PyTorch"."""
    return {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}.get(name, name)


# --- gradients -------------------------------------------------------------------------------
def input_gradient(backend: str, score: Callable[[Any], Any], images: np.ndarray) -> np.ndarray:
    """d score(x) / d x at `images`, as float32 NumPy, on the backend Keras runs.

    Args:
        backend: Keras's backend, `keras.backend.backend()`.
        score: maps a batch (a tensor of that backend) to one scalar tensor.
        images: the batch, float32.
    """
    gradient = {"tensorflow": _tf_gradient, "jax": _jax_gradient, "torch": _torch_gradient}.get(
        backend
    )
    if gradient is None:
        raise BackendError(f"gradients are not available on the {backend} backend.")
    import numpy as np

    return np.asarray(gradient(score, images), dtype=np.float32)


def _tf_gradient(score: Callable[[Any], Any], images: np.ndarray) -> Any:
    import tensorflow as tf

    x = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(x)
        total = score(x)
    return tape.gradient(total, x).numpy()


def _jax_gradient(score: Callable[[Any], Any], images: np.ndarray) -> Any:
    import jax
    import numpy as np

    return np.asarray(jax.grad(score)(jax.numpy.asarray(images)))


def _torch_gradient(score: Callable[[Any], Any], images: np.ndarray) -> Any:
    import keras

    # On the device Keras uses (the GPU when there is one); a fresh leaf to differentiate.
    x = keras.ops.convert_to_tensor(images).detach().clone().requires_grad_(True)
    score(x).backward()
    assert x.grad is not None
    return x.grad.detach().cpu().numpy()
