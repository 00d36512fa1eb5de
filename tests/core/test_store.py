"""The object store: a local folder (the default) and an fsspec ``memory://`` URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import twinengine.core
from twinengine.core import ConfigError, NotFoundError, ObjectStore

# --- local store ------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return ObjectStore(str(tmp_path / "store"))


def test_local_store_basics(store: ObjectStore, tmp_path: Path) -> None:
    assert store.is_local
    assert store.url == str(tmp_path / "store")
    assert store.uri("runs/r1/out.txt") == str(tmp_path / "store" / "runs" / "r1" / "out.txt")


def test_put_and_read_bytes(store: ObjectStore, tmp_path: Path) -> None:
    uri = store.put_bytes("runs/r1/logs/step.stdout", b"hello\x00\xffworld")
    assert uri == str(tmp_path / "store" / "runs" / "r1" / "logs" / "step.stdout")
    assert Path(uri).read_bytes() == b"hello\x00\xffworld"
    assert store.read_bytes("runs/r1/logs/step.stdout") == b"hello\x00\xffworld"
    assert store.read_bytes(uri) == b"hello\x00\xffworld"  # by the returned URI too


def test_put_bytes_overwrites(store: ObjectStore) -> None:
    store.put_bytes("k", b"first version, long")
    store.put_bytes("k", b"second")
    assert store.read_bytes("k") == b"second"


def test_empty_object(store: ObjectStore) -> None:
    store.put_bytes("empty", b"")
    assert store.exists("empty")
    assert store.read_bytes("empty") == b""
    assert store.tail("empty") == ""


def test_missing_key_is_not_found(store: ObjectStore) -> None:
    with pytest.raises(NotFoundError) as info:
        store.read_bytes("runs/nope/logs/x.stderr")
    assert "runs/nope/logs/x.stderr" in info.value.message
    assert store.url in info.value.message
    assert info.value.http_status == 404


def test_missing_absolute_uri_is_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        store.read_bytes(str(tmp_path / "store" / "nothing"))


def test_exists(store: ObjectStore) -> None:
    assert not store.exists("a/b.txt")
    uri = store.put_bytes("a/b.txt", b"x")
    assert store.exists("a/b.txt")
    assert store.exists(uri)
    assert store.exists("a")  # a "folder" of keys
    assert not store.exists("a/c.txt")


def test_tail(store: ObjectStore) -> None:
    store.put_bytes("log", b"".join(b"line %d\n" % i for i in range(1000)))
    tail = store.tail("log", max_bytes=20)
    assert tail == "7\nline 998\nline 999\n"
    assert len(tail) == 20
    assert store.tail("log").endswith("line 999\n")
    assert len(store.tail("log")) == 4000  # the default limit


def test_tail_of_a_short_object_is_all_of_it(store: ObjectStore) -> None:
    uri = store.put_bytes("short", b"just this")
    assert store.tail("short", max_bytes=1000) == "just this"
    assert store.tail(uri) == "just this"


def test_tail_of_a_missing_object_is_empty(store: ObjectStore) -> None:
    assert store.tail("not/there") == ""


def test_tail_replaces_a_cut_or_invalid_character(store: ObjectStore) -> None:
    store.put_bytes("utf8", "snow: 雪".encode())  # 雪 is three bytes
    assert store.tail("utf8", max_bytes=2) == "\ufffd\ufffd"
    store.put_bytes("latin1", "café".encode("latin-1"))
    assert store.tail("latin1") == "caf\ufffd"


def test_tail_of_zero_bytes_is_empty(store: ObjectStore) -> None:
    store.put_bytes("log", b"something")
    assert store.tail("log", max_bytes=0) == ""


def test_local_path(store: ObjectStore, tmp_path: Path) -> None:
    path = store.local_path("runs/r2/logs/step.stderr")
    assert path == tmp_path / "store" / "runs" / "r2" / "logs" / "step.stderr"
    assert path.parent.is_dir()  # parents created, so a process can write there directly
    assert not path.exists()
    path.write_bytes(b"written in place")
    assert store.exists("runs/r2/logs/step.stderr")
    assert store.read_bytes("runs/r2/logs/step.stderr") == b"written in place"


def test_put_file_copies(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "result.csv"
    source.write_bytes(b"a,b\n1,2\n")
    uri = store.put_file(source, "runs/r3/outputs/result.csv")
    assert uri == str(store.local_path("runs/r3/outputs/result.csv"))
    assert store.read_bytes("runs/r3/outputs/result.csv") == b"a,b\n1,2\n"
    assert source.read_bytes() == b"a,b\n1,2\n"  # the original stays
    source.write_bytes(b"changed")
    assert store.read_bytes("runs/r3/outputs/result.csv") == b"a,b\n1,2\n"  # a copy


def test_put_file_accepts_a_string_path(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "x.bin"
    source.write_bytes(b"\x01\x02")
    store.put_file(str(source), "x.bin")
    assert store.read_bytes("x.bin") == b"\x01\x02"


def test_put_file_of_a_file_already_in_place(store: ObjectStore) -> None:
    path = store.local_path("runs/r4/logs/step.stdout")
    assert path is not None
    path.write_bytes(b"log written in place")
    assert store.put_file(path, "runs/r4/logs/step.stdout") == str(path)
    assert store.read_bytes("runs/r4/logs/step.stdout") == b"log written in place"


def test_put_file_of_a_missing_file(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.put_file(tmp_path / "absent", "k")


def test_tilde_and_trailing_slash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    store = ObjectStore("~/objects/")
    assert store.url == "~/objects"
    assert store.put_bytes("k", b"v") == str(tmp_path / "objects" / "k")
    assert store.read_bytes("k") == b"v"


def test_file_url_is_a_local_store(tmp_path: Path) -> None:
    store = ObjectStore(f"file://{tmp_path / 'fstore'}")
    assert store.is_local
    uri = store.put_bytes("a/b", b"data")
    assert uri == str(tmp_path / "fstore" / "a" / "b")
    assert store.read_bytes("a/b") == b"data"
    assert store.local_path("a/b") == tmp_path / "fstore" / "a" / "b"


def test_relative_store_folder_is_resolved(twin_home: Path) -> None:
    store = ObjectStore("rel-store")
    assert store.put_bytes("k", b"v") == str(twin_home.resolve() / "rel-store" / "k")


def test_two_stores_on_one_folder_see_the_same_objects(tmp_path: Path) -> None:
    ObjectStore(str(tmp_path / "s")).put_bytes("shared", b"1")
    assert ObjectStore(str(tmp_path / "s")).read_bytes("shared") == b"1"


def test_default_store_is_under_twin_home(twin_home: Path) -> None:
    store = twinengine.core.get_store()
    assert store.is_local
    store.put_bytes("k", b"v")
    assert (twin_home / "store" / "k").read_bytes() == b"v"


# --- fsspec memory:// store ---------------------------------------------------------------


@pytest.fixture
def memory_store() -> Iterator[ObjectStore]:
    """A store on fsspec's process-wide memory file system, under a folder of its own."""
    root = f"memory://twin-test-{uuid.uuid4().hex}"
    store = ObjectStore(root + "/")
    yield store
    if store.fs.exists(root):
        store.fs.rm(root, recursive=True)


def test_memory_store_is_not_local(memory_store: ObjectStore) -> None:
    assert not memory_store.is_local
    assert not memory_store.url.endswith("/")
    assert memory_store.local_path("a/b") is None
    assert memory_store.uri("a/b") == memory_store.url + "/a/b"


def test_memory_store_put_and_read(memory_store: ObjectStore) -> None:
    uri = memory_store.put_bytes("runs/r1/logs/s.stdout", b"out\n\x00\xff")
    assert uri == memory_store.url + "/runs/r1/logs/s.stdout"
    assert memory_store.read_bytes("runs/r1/logs/s.stdout") == b"out\n\x00\xff"
    assert memory_store.read_bytes(uri) == b"out\n\x00\xff"
    memory_store.put_bytes("runs/r1/logs/s.stdout", b"new")
    assert memory_store.read_bytes(uri) == b"new"


def test_memory_store_exists(memory_store: ObjectStore) -> None:
    assert not memory_store.exists("k")
    uri = memory_store.put_bytes("k", b"v")
    assert memory_store.exists("k")
    assert memory_store.exists(uri)
    assert not memory_store.exists("k2")


def test_memory_store_missing_key_is_not_found(memory_store: ObjectStore) -> None:
    with pytest.raises(NotFoundError, match="not in the store"):
        memory_store.read_bytes("missing")
    with pytest.raises(NotFoundError):
        memory_store.read_bytes(memory_store.uri("missing"))
    assert memory_store.tail("missing") == ""


def test_memory_store_tail(memory_store: ObjectStore) -> None:
    memory_store.put_bytes("log", b"0123456789")
    assert memory_store.tail("log", max_bytes=3) == "789"


def test_memory_store_put_file(memory_store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(b"\x08\x07weights")
    uri = memory_store.put_file(source, "runs/r1/outputs/model.onnx")
    assert uri == memory_store.uri("runs/r1/outputs/model.onnx")
    assert memory_store.read_bytes("runs/r1/outputs/model.onnx") == b"\x08\x07weights"


def test_memory_stores_with_different_roots_are_separate() -> None:
    a = ObjectStore(f"memory://twin-test-{uuid.uuid4().hex}")
    b = ObjectStore(f"memory://twin-test-{uuid.uuid4().hex}")
    try:
        a.put_bytes("k", b"a")
        assert not b.exists("k")
        with pytest.raises(NotFoundError):
            b.read_bytes("k")
    finally:
        a.fs.rm(a.url, recursive=True)


def test_unknown_protocol_is_a_config_error() -> None:
    store = ObjectStore("nosuchproto://bucket/prefix")
    assert not store.is_local
    with pytest.raises(ConfigError) as info:
        store.put_bytes("k", b"v")
    assert "nosuchproto://bucket/prefix" in info.value.message
    assert info.value.hint and "TWIN_STORE" in info.value.hint


def test_store_from_twin_store_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"memory://twin-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("TWIN_STORE", url)
    store = twinengine.core.get_store()
    try:
        assert store.url == url
        store.put_bytes("k", b"v")
        assert ObjectStore(url).read_bytes("k") == b"v"
    finally:
        store.fs.rm(url, recursive=True)


def test_local_folder_is_created_inside_the_store(store: ObjectStore, tmp_path: Path) -> None:
    folder = store.local_folder("runs/r1/logs")
    assert folder is not None and folder.is_dir()
    assert folder == (tmp_path / "store" / "runs" / "r1" / "logs").resolve()
    with pytest.raises(NotFoundError):
        store.local_folder("../outside")
    assert ObjectStore("memory://bucket").local_folder("x") is None
