"""Spare scratch folders: recycled by rename, claimed once, bounded."""

from __future__ import annotations

import threading
from pathlib import Path

from twinengine.workflows.scratch import SparePool, recycle


def test_empty_job_folders_are_recycled_and_claimed_by_rename(tmp_path: Path) -> None:
    work = tmp_path / "work"
    for name in ("a", "b", "full"):
        (work / name).mkdir(parents=True)
    (work / "full" / "result.txt").write_text("kept out of the pool")
    (work / "loose.txt").write_text("a file, not a folder")
    spare = tmp_path / "spare"
    assert recycle(spare, [work]) == 2
    assert sorted(p.name for p in spare.iterdir()) == ["a", "b"]
    assert (work / "full" / "result.txt").exists()

    pool = SparePool(spare)
    target = tmp_path / "run"
    target.mkdir()
    first = pool.claim(target, "job1")
    second = pool.claim(target, "job2")
    assert first == str(target / "job1") and second == str(target / "job2")
    assert Path(first).is_dir() and not any(Path(first).iterdir())
    assert pool.claim(target, "job3") is None  # empty now
    assert not any(spare.iterdir())


def test_the_pool_is_bounded(tmp_path: Path) -> None:
    work = tmp_path / "work"
    for i in range(5):
        (work / f"d{i}").mkdir(parents=True)
    assert recycle(tmp_path / "spare", [work], limit=3) == 3
    assert len(list((tmp_path / "spare").iterdir())) == 3


def test_two_pools_never_hand_out_the_same_folder(tmp_path: Path) -> None:
    work = tmp_path / "work"
    for i in range(200):
        (work / f"d{i}").mkdir(parents=True)
    recycle(tmp_path / "spare", [work])
    claimed: list[str] = []
    lock = threading.Lock()

    def take(tag: str) -> None:
        pool = SparePool(tmp_path / "spare")  # each run lists the pool on its own
        target = tmp_path / tag
        target.mkdir()
        for i in range(200):
            got = pool.claim(target, f"j{i}")
            if got is None:
                return
            with lock:
                claimed.append(got)

    threads = [threading.Thread(target=take, args=(t,)) for t in ("x", "y")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 200 == len(set(claimed))
