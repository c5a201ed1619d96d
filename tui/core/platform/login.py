"""Who this process runs for and where they sit: the Unix user, the terminal and the ssh client,
said to others (the engine's viewers) when a command from another login steers training."""

from __future__ import annotations

import os
import pwd


def user_name(uid: int) -> str:
    """The login name of `uid`, or "uid N" where the system knows none."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def login_description() -> str:
    """This process's user and where they are: "alice from pts/3 (ssh 10.0.0.5)", "alice from
    pts/0", or "alice (no terminal, pid 4242)"."""
    who = user_name(os.getuid())
    terminal = _terminal()
    where = f" from {terminal}" if terminal else ""
    client = os.environ.get("SSH_CONNECTION", "").split()
    if client:
        where += f" (ssh {client[0]})"
    return who + (where or f" (no terminal, pid {os.getpid()})")


def _terminal() -> str:
    for fd in (0, 1, 2):
        try:
            name = os.ttyname(fd)
        except OSError:  # not a terminal, or closed
            continue
        return name.removeprefix("/dev/")
    return ""
