"""What a round of training is: a new model from the settings, or the model that exists carrying
on to a new epoch target with the settings that may change on the way."""

from __future__ import annotations

from dataclasses import dataclass

from tui.core.settings.hyperparams import ARCHITECTURE_FIELDS, Hyperparams
from tui.core.training.controls import MAX_EPOCHS


@dataclass(frozen=True)
class RoundPlan:
    """What a claimed round will do."""

    hparams: Hyperparams
    preset: str
    fresh: bool
    """A new model, recorded into a new run directory."""
    target: int


def plan_round(
    hparams: Hyperparams,
    preset: str,
    trained: Hyperparams | None,
    epochs_done: int,
    round_length: int,
) -> RoundPlan:
    """The round that `hparams` asks for.

    Without a model (`trained` is None), a new one from `hparams`. With one, the same model
    carries on: up to `hparams.epochs` if that is above the epochs done, else for another
    `round_length` epochs; settings that do not change the network (batch size, schedule, split)
    may change on the way.

    Args:
        hparams: the settings asked for.
        preset: the preset they started from (names a new run directory).
        trained: the settings of the model that exists, or None.
        epochs_done: the epochs it has trained.
        round_length: the epochs a round adds when the target asked for is already reached.

    Raises:
        ValueError: settings that would change the network of the model that exists.
    """
    if trained is None:
        return RoundPlan(hparams, preset, True, hparams.epochs)
    changed = sorted(
        name for name in ARCHITECTURE_FIELDS if getattr(hparams, name) != getattr(trained, name)
    )
    if changed:
        raise ValueError(
            f"The model exists, so {', '.join(changed)} cannot change; reset it (r) to "
            "train a new one with these settings."
        )
    target = hparams.epochs if hparams.epochs > epochs_done else epochs_done + round_length
    target = min(target, MAX_EPOCHS)
    return RoundPlan(hparams.with_changes(epochs=target), preset, False, target)
