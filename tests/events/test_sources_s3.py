"""S3Source against moto's S3 server on loopback (the real S3 REST API over HTTP), and
parse_bucket_notification against the bucket-notification body MinIO sends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import Recorder, running
from tests.events.samples import MINIO_NOTIFICATION
from twinengine.core import ConfigError
from twinengine.core.errors import InvalidInputError
from twinengine.events.base import SourceState
from twinengine.events.sources.s3 import S3Source, parse_bucket_notification

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region": "us-east-1"}


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(endpoint: str) -> tuple[Any, str]:
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    name = f"twin-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    return client, name


def make(endpoint: str, name: str, state: SourceState, **extra: Any) -> S3Source:
    config = {"endpoint_url": endpoint, "bucket": name, "interval": 0.05, **CREDENTIALS, **extra}
    return S3Source("incoming", config, state)


def test_new_and_overwritten_objects_and_restart(
    endpoint: str, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = bucket
    client.put_object(Bucket=name, Key="raw/a.csv", Body=b"1,2\n")
    client.put_object(Bucket=name, Key="other/skip.txt", Body=b"no")
    state = SourceState(tmp_path, "incoming")

    seen = Recorder()
    with running(make(endpoint, name, state, prefix="raw/", head=True), seen):
        seen.wait_for(1)
        client.put_object(
            Bucket=name, Key="raw/b c.json", Body=b"{}", ContentType="application/json"
        )
        seen.wait_for(2)
    a, b = seen.events
    etag_a = client.head_object(Bucket=name, Key="raw/a.csv")["ETag"].strip('"')
    assert (a.key, a.kind, a.version, a.size) == ("raw/a.csv", "created", etag_a, 4)
    assert a.location == f"s3://{name}/raw/a.csv"
    assert (b.key, b.content_type, b.size) == ("raw/b c.json", "application/json", 2)
    assert state.load()["objects"] == {"raw/a.csv": etag_a, "raw/b c.json": b.version}

    # restart: nothing twice; an overwrite (new ETag) and a deletion are announced once
    client.put_object(Bucket=name, Key="raw/a.csv", Body=b"1,2\n3,4\n")
    client.delete_object(Bucket=name, Key="raw/b c.json")
    again = Recorder()
    with running(make(endpoint, name, state, prefix="raw/", deletes=True), again):
        again.wait_for(2)
    assert [(e.key, e.kind) for e in again.events] == [
        ("raw/a.csv", "modified"),
        ("raw/b c.json", "deleted"),
    ]
    assert again.events[0].version != etag_a
    assert list(state.load()["objects"]) == ["raw/a.csv"]


def test_failed_emit_redelivers_same_event(
    endpoint: str, bucket: tuple[Any, str], tmp_path: Path
) -> None:
    client, name = bucket
    for key in ("k1", "k2", "k3"):
        client.put_object(Bucket=name, Key=key, Body=key.encode())
    state = SourceState(tmp_path, "incoming")
    crashing = Recorder(fail_on=2)
    with running(make(endpoint, name, state), crashing) as job:
        job.wait_error()
    assert crashing.keys == ["k1"] and list(state.load()["objects"]) == ["k1"]
    again = Recorder()
    with running(make(endpoint, name, state), again):
        again.wait_for(2)
    assert again.keys == ["k2", "k3"]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()


def test_unreachable_endpoint_raises(tmp_path: Path) -> None:
    from tests.events.conftest import free_port

    source = make(f"http://127.0.0.1:{free_port()}", "b", SourceState(tmp_path, "x"))
    with running(source, Recorder()) as job:
        assert "Could not connect" in str(job.wait_error())


def test_bad_config() -> None:
    with pytest.raises(ConfigError, match=r"source 'incoming' \(s3\): 'bucket' is required"):
        S3Source("incoming", {})
    with pytest.raises(ConfigError, match="'secret_key' is required with 'access_key'"):
        S3Source("incoming", {"bucket": "b", "access_key": "x"})
    with pytest.raises(ConfigError, match="'interval' must be at least"):
        S3Source("incoming", {"bucket": "b", "interval": 0})


def test_parse_bucket_notification() -> None:
    created, removed = parse_bucket_notification(MINIO_NOTIFICATION, "minio")
    assert (created.key, created.kind, created.size) == ("run 1/out file.nc", "created", 1024)
    assert created.version == "d41d8cd98f00b204e9800998ecf8427e"
    assert created.location == "s3://data/run 1/out file.nc"
    assert created.content_type == "application/x-netcdf"
    assert created.metadata["event_name"] == "s3:ObjectCreated:Put"
    assert (removed.key, removed.kind, removed.version) == (
        "old.nc",
        "deleted",
        "deleted:17CB3D3C1F8D7B2B",
    )
    # a re-sent notification is the same event; a versioned bucket keys on the version id
    again = parse_bucket_notification(MINIO_NOTIFICATION, "minio")[0]
    assert again.idempotency_key() == created.idempotency_key()
    versioned = {"Records": [dict(MINIO_NOTIFICATION["Records"][0])]}
    record = versioned["Records"][0]
    record["s3"] = {**record["s3"], "object": {**record["s3"]["object"], "versionId": "v7"}}
    assert parse_bucket_notification(versioned, "minio")[0].version == "v7"
    assert parse_bucket_notification({"Event": "s3:TestEvent"}, "minio") == []
    with pytest.raises(InvalidInputError, match="record 0 lacks 's3'"):
        parse_bucket_notification({"Records": [{"eventName": "x"}]}, "minio")
