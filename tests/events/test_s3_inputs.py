"""``$file`` on an ``s3`` source gives a trigger's run the object itself (docs/events.md):
the server fetches it with the source's own credentials — only from the source's bucket
and prefix, only when the event's size is known and within the limit — into an upload
of the trigger's project, against moto's S3 server on loopback and a live server. A
notification naming another bucket, one without a size, an object over the limit and a
``webhook`` with ``format: s3`` (no credentials) each fail the delivery with the reason;
``http(s)`` locations are fetched only from ``fetch_hosts``."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Live, start_server, wait_run
from tests.waiting import until
from twinengine.core import InvalidInputError, Settings
from twinengine.events.objectfetch import ReportedObjects
from twinengine.workflows.inputs import UploadStore

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

CAT = (
    "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\n"
    "inputs:\n  f: {type: File, inputBinding: {position: 1}}\n"
    "outputs:\n  out: {type: stdout}\nstdout: out.txt\n"
)


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="module")
def s3(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("s3-inputs"), max_upload_mb=1)
    yield server
    server.stop()


def post_yaml(client: httpx.Client, path: str, text: str) -> None:
    answer = client.post(path, content=text.encode(), headers={"content-type": "application/yaml"})
    assert answer.status_code == 201, answer.text


def deliveries(client: httpx.Client, trigger: str) -> list[dict]:
    items = client.get("/api/v1/events", params={"limit": 200}).json()["items"]
    return [
        {**d, "key": e["key"]} for e in items for d in e["deliveries"] if d["trigger"] == trigger
    ]


def notification(bucket: str, key: str, size: int | None) -> dict:
    obj: dict[str, Any] = {"key": key, "eTag": uuid.uuid4().hex}
    if size is not None:
        obj["size"] = size
    return {"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {
        "bucket": {"name": bucket}, "object": obj}}]}  # fmt: skip


def test_file_of_an_s3_event_is_fetched_for_the_run(live: Live, endpoint: str, s3: Any) -> None:
    mine, theirs = f"beta-{uuid.uuid4().hex[:8]}", f"alpha-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=mine)
    s3.create_bucket(Bucket=theirs)
    s3.put_object(Bucket=theirs, Key="in/secret.txt", Body=b"ALPHA ONLY\n")
    bob = live.user_token("bob", {"beta": "editor"})
    with live.client(bob) as client:
        cat = client.post(
            "/api/v1/workflows", data={"content": CAT, "project": "beta", "name": "cat"}
        )
        assert cat.status_code == 201, cat.text
        post_yaml(
            client,
            "/api/v1/sources?project=beta",
            f"name: raw\nkind: s3\nbucket: {mine}\nprefix: in/\nendpoint_url: {endpoint}\n"
            "access_key: testing\nsecret_key: testing\nregion: us-east-1\ninterval: 0.2\n",
        )
        post_yaml(
            client, "/api/v1/sources?project=beta", "name: hook3\nkind: webhook\nformat: s3\n"
        )
        for name, source in (("cat-raw", "raw"), ("cat-hook3", "hook3")):
            post_yaml(
                client,
                "/api/v1/triggers?project=beta",
                f"name: {name}\nsource: {source}\nworkflow: cat\ninputs: {{f: $file}}\n"
                "retries: {attempts: 1}\n",
            )
        s3.put_object(Bucket=mine, Key="in/a.txt", Body=b"hello from s3\n")
        s3.put_object(Bucket=mine, Key="in/big.txt", Body=b"x" * (1536 * 1024))
        done = until(lambda: [d for d in deliveries(client, "cat-raw") if d["key"] == "in/a.txt"
                              and d["run_id"]])  # fmt: skip
        run = wait_run(client, done[0]["run_id"])
        assert run["state"] == "succeeded", run
        assert run["inputs"]["f"]["location"] == f"s3://{mine}/in/a.txt"  # what it was given
        assert str(live.settings.home) not in str(run)
        out = client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["out"]
        assert client.get(out["download"]).text == "hello from s3\n"

        big = until(lambda: [d for d in deliveries(client, "cat-raw") if d["key"] == "in/big.txt"
                             and d["state"] == "dead"])  # fmt: skip
        assert "more than the 1048576" in big[0]["error"] and big[0]["run_id"] is None

        for body, expected in (
            (notification(theirs, "in/secret.txt", 11), "no object"),  # another bucket
            (notification(mine, "in/other.txt", None), "size is not known"),
        ):
            posted = client.post("/api/v1/events/raw?project=beta", json=body)
            assert posted.status_code == 202, posted.text
            key = body["Records"][0]["s3"]["object"]["key"]
            failed = until(
                lambda key=key: [
                    d
                    for d in deliveries(client, "cat-raw")
                    if d["key"] == key and d["state"] == "dead"
                ]
            )
            assert expected in failed[0]["error"], failed
        posted = client.post(
            "/api/v1/events/hook3?project=beta", json=notification(mine, "in/a.txt", 14)
        )
        assert posted.status_code == 202
        refused = until(
            lambda: [d for d in deliveries(client, "cat-hook3") if d["state"] == "dead"]
        )
        assert "only an s3 source's own objects" in refused[0]["error"]
        for run in client.get("/api/v1/runs", params={"project": "beta"}).json()["items"]:
            for output in (
                client.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"].values()
            ):
                assert "ALPHA ONLY" not in client.get(output["download"]).text


class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"page\n")

    def log_message(self, *args: object) -> None:
        pass


def test_http_locations_are_fetched_only_from_fetch_hosts(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/data/page.txt"
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'twin.db'}", store="")
    trigger = {"name": "t", "project": "beta", "definition": {"filter": {}}}
    given = {"f": {"class": "File", "location": url}}
    bodies = [{"location": url, "size": 5}]
    try:
        closed = ReportedObjects(settings, None, UploadStore(settings=settings))
        with pytest.raises(InvalidInputError, match="fetch_hosts"):
            closed.fetched(given, bodies, None, trigger)
        allowed = replace(settings, fetch_hosts=(f"127.0.0.1:{server.server_address[1]}",))
        uploads = UploadStore(settings=allowed)
        fetched = ReportedObjects(allowed, None, uploads).fetched(given, bodies, None, trigger)
        upload = uploads.get(fetched["f"]["location"].removeprefix("upload:"), "beta")
        assert Path(upload["path"]).read_bytes() == b"page\n" and upload["name"] == "page.txt"
    finally:
        server.shutdown()
