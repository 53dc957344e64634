"""The sandbox's state file: where ``--sandbox`` finds the endpoint, so whoever writes it
points the CLI elsewhere, and whoever plants a symlink where it is written has the sandbox
write through it. Planted links and directories, as another user of the machine would.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from originlock.errors import TargetError
from originlock.target import (
    SANDBOX_FILE_ENV,
    read_sandbox_file,
    sandbox_dir,
    sandbox_file,
    write_sandbox_file,
)

STATE = {"endpoint_url": "http://127.0.0.1:4566", "pid": os.getpid(), "region": "us-east-1"}


@pytest.fixture
def shared_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A shared temporary directory (as /tmp is: sticky, open to all) and no XDG runtime
    directory: the default location is ``<tmp>/originlock-<uid>/sandbox.json``."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    monkeypatch.delenv(SANDBOX_FILE_ENV, raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    yield shared


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_sandbox_file_default_is_owner_only_in_a_private_directory(shared_tmp: Path) -> None:
    path = sandbox_file()

    write_sandbox_file(path, STATE)

    assert path == shared_tmp / f"originlock-{os.getuid()}" / "sandbox.json"
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
    assert os.lstat(path).st_uid == os.getuid()
    assert read_sandbox_file() == STATE
    assert sorted(p.name for p in path.parent.iterdir()) == ["sandbox.json"]  # no temporary


def test_sandbox_file_rewritten_is_replaced_whole(shared_tmp: Path) -> None:
    path = sandbox_file()
    write_sandbox_file(path, {**STATE, "api_url": "http://127.0.0.1:1/" + "x" * 500})

    write_sandbox_file(path, STATE)

    assert json.loads(path.read_text()) == STATE


def test_sandbox_file_refuses_a_planted_directory_symlink(shared_tmp: Path, tmp_path: Path) -> None:
    # Given another user's directory, linked where ours would be created
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (shared_tmp / f"originlock-{os.getuid()}").symlink_to(theirs)

    # When the sandbox writes its state, or the CLI reads it
    with pytest.raises(TargetError, match="not a directory"):
        write_sandbox_file(sandbox_file(), STATE)
    with pytest.raises(TargetError, match="not a directory"):
        read_sandbox_file()

    # Then nothing was written through the link
    assert list(theirs.iterdir()) == []


def test_sandbox_file_refuses_a_directory_others_can_enter(shared_tmp: Path) -> None:
    planted = shared_tmp / f"originlock-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    (planted / "sandbox.json").write_text(json.dumps({**STATE, "endpoint_url": "http://evil/"}))

    with pytest.raises(TargetError, match="others can enter it"):
        read_sandbox_file()
    with pytest.raises(TargetError, match="others can enter it"):
        write_sandbox_file(sandbox_file(), STATE)


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to plant another user's file")
def test_sandbox_file_refuses_a_directory_or_file_of_another_user(shared_tmp: Path) -> None:
    planted = shared_tmp / f"originlock-{os.getuid()}"
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    with pytest.raises(TargetError, match="owned by uid 65534"):
        read_sandbox_file()

    explicit = shared_tmp / "state.json"
    explicit.write_text(json.dumps(STATE))
    os.chown(explicit, 65534, 65534)
    with pytest.raises(TargetError, match="owned by uid 65534"):
        read_sandbox_file(explicit)


def test_sandbox_file_replaces_a_planted_symlink_instead_of_following_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a file the user cares about, and links to it where the state file (and a
    # temporary beside it) would be written
    precious = tmp_path / "precious"
    precious.write_text("keep me\n")
    path = tmp_path / "state" / "sandbox.json"
    path.parent.mkdir()
    path.symlink_to(precious)
    path.with_suffix(".tmp").symlink_to(precious)
    monkeypatch.setenv(SANDBOX_FILE_ENV, str(path))

    # When the sandbox writes its state there
    write_sandbox_file(path, STATE)

    # Then the link was replaced by a file of the user's; the target is untouched
    assert precious.read_text() == "keep me\n"
    assert not path.is_symlink() and mode(path) == 0o600
    assert read_sandbox_file(path) == STATE


def test_sandbox_file_read_refuses_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text(json.dumps(STATE))
    link = tmp_path / "sandbox.json"
    link.symlink_to(real)

    with pytest.raises(TargetError, match="symlink"):
        read_sandbox_file(link)


def test_sandbox_file_read_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "sandbox.json"
    os.mkfifo(fifo)

    with pytest.raises(TargetError, match="not a regular file"):
        read_sandbox_file(fifo)  # and returns at once: a FIFO is not opened for a reader


def test_sandbox_dir_uses_a_private_xdg_runtime_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_tmp: Path
) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))

    assert sandbox_dir() == runtime / "originlock"
    write_sandbox_file(sandbox_file(), STATE)
    assert mode(runtime / "originlock") == 0o700 and read_sandbox_file() == STATE

    runtime.chmod(0o755)  # not private: not used
    assert sandbox_dir() == shared_tmp / f"originlock-{os.getuid()}"
