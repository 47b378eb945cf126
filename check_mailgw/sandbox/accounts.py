"""The sandbox's throwaway mail account, and the file that hands its password to the plugin."""

import grp
import os
import pwd
import stat
from collections.abc import Iterable
from pathlib import Path

SANDBOX_DOMAIN = "sandbox.test"
SANDBOX_USER = f"monitor@{SANDBOX_DOMAIN}"
# A throwaway value, valid only against the sandbox.
SANDBOX_PASSWORD = "sandbox-password"


def default_accounts() -> dict[str, str]:
    """Username -> password of the accounts a sandbox server accepts by default."""
    return {SANDBOX_USER: SANDBOX_PASSWORD}


def write_password_file(path: str | Path, password: str = SANDBOX_PASSWORD) -> Path:
    """Write a password, without a trailing newline, to a file only its owner can read."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        # An existing file keeps its old mode through os.open.
        os.fchmod(file.fileno(), 0o600)
        file.write(password)
    return path


def hand_over(paths: Iterable[Path], user: str) -> None:
    """Give files to the user who runs the checks; their modes stay (0600 for secrets)."""
    account = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)


def can_enter(directory: Path, user: str) -> bool:
    """Whether user may reach files in directory, by the mode bits of it and its parents
    (root's view: os.access answers for the user running the sandbox)."""
    account = pwd.getpwnam(user)
    groups = {account.pw_gid} | {group.gr_gid for group in grp.getgrall()
                                 if user in group.gr_mem}
    for path in [directory.resolve(), *directory.resolve().parents]:
        status = path.stat()
        if status.st_uid == account.pw_uid:
            needed = stat.S_IXUSR
        elif status.st_gid in groups:
            needed = stat.S_IXGRP
        else:
            needed = stat.S_IXOTH
        if not status.st_mode & needed:
            return False
    return True
