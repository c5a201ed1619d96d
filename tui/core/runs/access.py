"""Whether this user may continue a run, answered before anything loads: whose folder it is,
whether it can be written, and whether something trains into it now."""

from __future__ import annotations

import os
from pathlib import Path

from tui.core.platform.login import user_name
from tui.core.runs.layout import RunError
from tui.core.runs.lock import RunBusy, busy_sentence, is_locked


def check_continuable(path: Path) -> None:
    """Refuse, in one sentence, a run this user cannot continue now.

    Only the file system is read: no data, no Keras, no engine.

    Raises:
        RunError: the folder is another user's or cannot be written.
        RunBusy: a live process trains into it.
    """
    check_owner(path)
    holder = is_locked(path)
    if holder is not None:
        raise RunBusy(busy_sentence(path, holder))


def check_owner(path: Path) -> None:
    """Refuse, in one sentence, a run folder that is another user's or not writable.

    Raises:
        RunError: it is not this user's to train into.
    """
    try:
        owner = path.stat().st_uid
    except OSError as err:
        raise RunError(f"cannot read {path}: {err.strerror or err}.") from None
    me = os.geteuid()
    if owner != me:
        raise RunError(
            f"run {path.name} belongs to {user_name(owner)}, not to you ({user_name(me)}): it "
            "is not yours to train or attach to; copy the folder to go on from it."
        )
    if not os.access(path, os.W_OK):
        raise RunError(
            f"run {path.name} cannot be written by you ({user_name(me)}); fix its permissions "
            "(chmod u+w) or copy the folder to go on from it."
        )
