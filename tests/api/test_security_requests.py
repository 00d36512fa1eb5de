"""Request bodies are counted as they stream: a chunked body past its route's limit is
answered 413 long before it is all sent, on every kind of route (JSON, YAML, multipart
uploads, PROV documents; the MLflow proxy in test_security_access); a declared size
past it is refused at once."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import Live, start_server

KB = 1024
MB = 1024 * KB
REQUEST_KB, UPLOAD_MB, PROV_MB = 64, 2, 1
BOUNDARY = "twinboundary"


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    live = start_server(
        tmp_path_factory.mktemp("limits"),
        max_request_kb=REQUEST_KB,
        max_upload_mb=UPLOAD_MB,
        max_prov_mb=PROV_MB,
    )
    yield live
    live.stop()


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and the whole answer (headers and body) read from ``sock``."""
    sock.settimeout(10)
    data = b""
    while True:
        head, _, body = data.partition(b"\r\n\r\n")
        if _:
            size = next(
                (
                    int(v)
                    for k, _, v in (h.partition(b":") for h in head.split(b"\r\n"))
                    if k.strip().lower() == b"content-length"
                ),
                None,
            )
            if size is not None and len(body) >= size:
                break
        try:
            part = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not part:
            break
        data += part
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data


def stream(
    live: Live, method: str, path: str, headers: dict[str, str], total: int, preamble: bytes = b""
) -> tuple[int, int, bytes]:
    """Send a chunked body of up to ``total`` bytes from a raw socket, stopping at the first
    answer: ``(status, bytes sent, answer)``."""
    where = urlsplit(live.url)
    sock = socket.create_connection((where.hostname, where.port))
    lines = [f"{method} {path} HTTP/1.1", f"Host: {where.netloc}", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    block = preamble + b"x" * (64 * KB - len(preamble))
    sent = 0
    sock.settimeout(5)
    try:
        while sent < total:
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server answered while we were still sending
            except BlockingIOError:
                pass
            sock.settimeout(5)
            sock.sendall(f"{len(block):x}\r\n".encode() + block + b"\r\n")
            sent += len(block)
            block = b"x" * (64 * KB)
        else:
            sock.sendall(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass  # the server stopped reading: its answer is waiting
    status, answer = _answer(sock)
    sock.close()
    return status, sent, answer


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_chunked_json_body_is_refused_as_it_passes_the_limit(small: Live) -> None:
    with small.client() as client:
        hook = client.post("/api/v1/sources", content=b"name: hook\nkind: webhook\n")
        assert hook.status_code == 201, hook.text
    for path in (
        "/api/v1/runs",
        "/api/v1/sources",
        "/api/v1/triggers",
        "/api/v1/tokens",
        "/api/v1/events/hook",
        "/api/v1/functions",
    ):
        headers = {**auth(small.token), "Content-Type": "application/json"}
        start = time.perf_counter()
        status, sent, answer = stream(small, "POST", path, headers, 300 * MB)
        assert status == 413, (path, answer[:300])
        assert b"TWIN_MAX_REQUEST_KB" in answer and b'"too_large"' in answer
        assert sent < 16 * MB, (path, sent)  # stopped early: what sits in socket buffers
        assert time.perf_counter() - start < 20


def test_uploads_and_prov_documents_have_their_own_limits(small: Live) -> None:
    form = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"'
        "\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    multipart = {**auth(small.token), "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    cases = [
        ("POST", "/api/v1/uploads", multipart, form, "TWIN_MAX_UPLOAD_MB", UPLOAD_MB),
        ("POST", "/api/v1/workflows", multipart, form, "TWIN_MAX_UPLOAD_MB", UPLOAD_MB),
        ("PUT", "/api/v1/prov/documents/big", auth(small.token), b"", "TWIN_MAX_PROV_MB", PROV_MB),
    ]
    for method, path, headers, preamble, setting, limit_mb in cases:
        status, sent, answer = stream(small, method, path, headers, 300 * MB, preamble)
        assert status == 413, (path, answer[:300])
        assert setting.encode() in answer, path
        assert limit_mb * MB < sent < limit_mb * MB + 16 * MB, (path, sent)


def test_a_declared_size_past_the_limit_is_refused_before_the_body(small: Live) -> None:
    where = urlsplit(small.url)
    for path, size in (("/api/v1/runs", REQUEST_KB * KB + 1), ("/api/v1/uploads", 300 * MB)):
        with socket.create_connection((where.hostname, where.port)) as sock:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\n"
                f"Authorization: Bearer {small.token}\r\nContent-Length: {size}\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n"
            )
            sock.sendall(head.encode())
            status, answer = _answer(sock)
        assert status == 413, (path, answer[:300])


def test_bodies_within_their_limit_pass(small: Live) -> None:
    with small.client() as client:
        upload = client.post(
            "/api/v1/uploads", files={"file": ("a.bin", b"y" * (REQUEST_KB * 4 * KB))}
        )
        assert upload.status_code == 201, upload.text
        json_body = client.post("/api/v1/runs", json={"workflow": "nope", "inputs": {}})
        assert json_body.status_code == 404  # read and handled, not refused
        too_big = client.post(
            "/api/v1/runs", json={"workflow": "nope", "inputs": {"x": "y" * (REQUEST_KB * KB)}}
        )
        assert too_big.status_code == 413
        assert too_big.json()["error"]["hint"].endswith("raise TWIN_MAX_REQUEST_KB on the server")
