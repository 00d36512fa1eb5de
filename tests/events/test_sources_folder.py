"""FolderSource against a real folder: existing files on start, new files through
inotify and through polling, settling of files still being written, deletions, and
a restart that neither re-announces acknowledged files nor loses unacknowledged ones."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.events.conftest import Recorder, running, wait_until
from twinengine.core import ConfigError
from twinengine.events.base import SourceState
from twinengine.events.sources.folder import FolderSource


def version_of(path: Path) -> str:
    info = path.stat()
    return f"{info.st_mtime_ns}-{info.st_size}"


@pytest.mark.parametrize("mode", ["auto", "poll"])
def test_existing_then_new_files_and_restart(tmp_path: Path, mode: str) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "old.txt").write_text("old")
    state = SourceState(tmp_path / "state", "incoming")
    config = {"path": str(root), "mode": mode, "interval": 0.05, "settle": 0.05}

    seen = Recorder()
    with running(FolderSource("incoming", config, state), seen):
        seen.wait_for(1)
        (root / "sub" / "new.csv").write_text("a,b\n1,2\n")
        seen.wait_for(2)
    old, new = seen.events
    assert (old.key, old.kind, old.size, old.version) == (
        "old.txt",
        "created",
        3,
        version_of(root / "old.txt"),
    )
    assert (new.key, new.size, new.content_type) == ("sub/new.csv", 8, "text/csv")
    assert new.location == str(root / "sub" / "new.csv")
    assert new.version == version_of(root / "sub" / "new.csv")
    assert state.load()["files"] == {"old.txt": old.version, "sub/new.csv": new.version}

    # restart: acknowledged files stay quiet, a change while down is announced once
    (root / "old.txt").write_text("changed")
    again = Recorder()
    with running(FolderSource("incoming", config, state), again):
        again.wait_for(1)
        (root / "third.txt").write_text("3")
        again.wait_for(2)
    assert [(e.key, e.kind) for e in again.events] == [
        ("old.txt", "modified"),
        ("third.txt", "created"),
    ]


def test_settle_waits_for_a_file_being_written(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    config = {"path": str(root), "settle": 0.3}
    seen = Recorder()
    with running(FolderSource("incoming", config, SourceState(tmp_path / "s", "x")), seen):
        time.sleep(0.2)  # let the watch start

        def write_slowly() -> None:
            with (root / "big.bin").open("wb") as out:
                for _ in range(5):
                    out.write(b"x" * 1000)
                    out.flush()
                    time.sleep(0.1)

        writer = threading.Thread(target=write_slowly)
        writer.start()
        writer.join()
        seen.wait_for(1)
    assert [(e.key, e.size) for e in seen.events] == [("big.bin", 5000)]


def test_pattern_not_recursive_and_deletes(tmp_path: Path) -> None:
    root = tmp_path / "in"
    (root / "deep").mkdir(parents=True)
    config = {
        "path": str(root),
        "pattern": "*.h5",
        "recursive": False,
        "deletes": True,
        "settle": 0.05,
    }
    seen = Recorder()
    with running(FolderSource("incoming", config, SourceState(tmp_path / "s", "x")), seen):
        time.sleep(0.2)
        (root / "skip.txt").write_text("no")
        (root / "deep" / "skip.h5").write_text("no")
        (root / "take.h5").write_text("yes")
        created = seen.wait_for(1)[0]
        (root / "take.h5").unlink()
        seen.wait_for(2)
    deleted = seen.events[1]
    assert seen.keys == ["take.h5", "take.h5"]
    assert (deleted.kind, deleted.version) == ("deleted", f"deleted:{created.version}")
    assert deleted.idempotency_key() != created.idempotency_key()


def test_failed_emit_is_not_acknowledged(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(name)
    state = SourceState(tmp_path / "s", "incoming")
    config = {"path": str(root), "mode": "poll", "settle": 0}

    crashing = Recorder(fail_on=2)
    with running(FolderSource("incoming", config, state), crashing) as job:
        assert isinstance(job.wait_error(), RuntimeError)
    assert crashing.keys == ["a.txt"]
    assert list(state.load()["files"]) == ["a.txt"]

    again = Recorder()
    with running(FolderSource("incoming", config, state), again):
        again.wait_for(2)
    assert again.keys == ["b.txt", "c.txt"]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()


def test_missing_folder_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"source 'incoming' \(folder\): 'path' is required"):
        FolderSource("incoming", {})
    with pytest.raises(ConfigError, match="'mode' must be one of auto, inotify, poll"):
        FolderSource("incoming", {"path": "/x", "mode": "fast"})
    with pytest.raises(ConfigError, match="'settle' must be a number"):
        FolderSource("incoming", {"path": "/x", "settle": "soon"})
    with pytest.raises(ConfigError, match="'recursive' must be bool"):
        FolderSource("incoming", {"path": "/x", "recursive": "yes"})
    source = FolderSource("incoming", {"path": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="is not a folder"):
        source.run(Recorder(), threading.Event())


def test_stops_promptly_while_idle(tmp_path: Path) -> None:
    source = FolderSource("incoming", {"path": str(tmp_path), "mode": "poll", "interval": 30})
    with running(source, Recorder()) as job:
        wait_until(lambda: job.thread.is_alive(), what="start")
        time.sleep(0.1)
