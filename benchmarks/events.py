"""Event benchmark: a burst of events, each starting a one-step workflow in ``twin serve``.

    python benchmarks/events.py [--source folder|nats] [--rate 200] [--seconds 60] [--kill]
                                [--sandbox both|auto|bwrap|none]

Files are dropped into a watched folder (written aside, then renamed in, as producers
should), or messages published to a NATS JetStream subject, at ``--rate`` per second for
``--seconds``. Each event starts one run of a one-step workflow (``echo`` of the event's
key). Reported: event-to-run-start latency (the producer's clock at write/publish → the
run's ``started_at``) p50/p99, throughput, events lost (no run) and events run twice,
and the CPU time spent per run over the burst (``/proc``: the server process, its run
workers, and the processes the workers started and reaped — each step's sandbox and
command — besides the whole machine's busy time per run, producer included).
Targets on the embedded default: p99 ≤ 200 ms at 200 events/s, 0 lost. With ``--kill``
the server is killed (SIGKILL) half-way through the burst and started again on the same
home: every event must still lead to exactly one run. By default (``--sandbox both``) the
burst runs twice on fresh homes — ``TWIN_SANDBOX=none``, then the sandbox ``twin serve``
picks here — and each is reported, with the cost the sandbox adds to a step measured at
the executor (:mod:`sandbox_cost`).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import signal
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sandbox_cost import report as sandbox_report  # benchmarks/sandbox_cost.py

from twinengine.api.process import ServeProcess

ROOT = Path(__file__).resolve().parent.parent
ECHO = ROOT / "src/twinengine/workflows/templates/echo.cwl"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _times(pid: int) -> tuple[float, float]:
    """(own CPU seconds, CPU seconds of its reaped children) of a process; zeros if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = text[text.rfind(")") + 2 :].split()
    user, system, cuser, csystem = (int(x) / _HZ for x in fields[11:15])
    return user + system, cuser + csystem


def _children(pid: int) -> list[int]:
    """The processes ``pid``'s threads started (and have not reaped)."""
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found.extend(int(x) for x in (task / "children").read_text().split())
    except OSError:
        pass
    return found


def _busy() -> float:
    """CPU seconds the whole machine was busy (all cores, since boot)."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return 0.0
    return (sum(values) - values[3] - values[4]) / _HZ


class CpuMeter:
    """CPU seconds of the server's processes over the burst: ``server`` (its own),
    ``workers`` (its child processes: run workers), ``steps`` (what those reaped: each
    step's sandbox and command), ``orphans`` (what init reaped meanwhile: processes whose
    parent went first — a sandbox's own helpers, but also any other program's),
    ``producer`` (this benchmark: writing the files, watching the outcome) and
    ``machine`` (all busy time of all cores, kernel threads included). Sampled every
    0.2 s, so a worker replaced mid-burst still counts until it went."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base: dict[int, tuple[float, float]] = {}
        self.last: dict[int, tuple[float, float]] = {}
        self.machine = (0.0, 0.0)
        self.init = (0.0, 0.0)
        self.producer = (0.0, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> CpuMeter:
        self.base = {p: _times(p) for p in [self.pid, *_children(self.pid)]}
        self.machine = (_busy(), 0.0)
        self.init = (_times(1)[1], 0.0)
        self.producer = (time.process_time(), 0.0)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            for p in [self.pid, *_children(self.pid)]:
                now = _times(p)
                if now != (0.0, 0.0):
                    self.last[p] = now

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        self.machine = (self.machine[0], _busy())
        self.init = (self.init[0], _times(1)[1])
        self.producer = (self.producer[0], time.process_time())
        used = {"server": 0.0, "workers": 0.0, "steps": 0.0}
        for p, (own, reaped) in self.last.items():
            own0, reaped0 = self.base.get(p, (0.0, 0.0))
            if p == self.pid:
                used["server"] += own - own0
            else:
                used["workers"] += own - own0
                used["steps"] += reaped - reaped0
        used["orphans"] = self.init[1] - self.init[0]
        used["producer"] = self.producer[1] - self.producer[0]
        used["machine"] = self.machine[1] - self.machine[0]
        return used


def prepare(server: ServeProcess, token: str, source: str, drop: Path, subject: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as api:
        made = api.post("/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
        made.raise_for_status()
        if source == "folder":
            text = f"name: drop\nkind: folder\npath: {drop}\nsettle: 0.01\n"
        else:
            text = (
                f"name: drop\nkind: nats\nsubject: {subject}\nstream: BENCH{os.getpid()}\n"
                "create_stream: true\n"
            )
        api.post("/api/v1/sources", content=text.encode()).raise_for_status()
        trigger = "name: bench\nsource: drop\nworkflow: echo\ninputs: {message: $key}\n"
        api.post("/api/v1/triggers", content=trigger.encode()).raise_for_status()


def produce_files(drop: Path, rate: float, count: int, start_at: int, sent: dict) -> None:
    aside = drop.parent / "aside"
    aside.mkdir(exist_ok=True)
    t0 = time.monotonic()
    for i in range(start_at, start_at + count):
        target = t0 + (i - start_at) / rate
        pause = target - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        name = f"e{i:06d}.txt"
        (aside / name).write_text(f"event {i}\n")
        sent[name] = time.time()
        os.replace(aside / name, drop / name)


def produce_nats(subject: str, rate: float, count: int, start_at: int, sent: dict) -> None:
    import nats

    async def publish() -> None:
        client = await nats.connect("nats://127.0.0.1:4222")
        stream = client.jetstream()
        t0 = time.monotonic()
        for i in range(start_at, start_at + count):
            pause = t0 + (i - start_at) / rate - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            sent[f"m{i:06d}"] = time.time()
            await stream.publish(
                subject, f'{{"key": "m{i:06d}"}}'.encode(), headers={"Nats-Msg-Id": f"m{i:06d}"}
            )
        await client.close()

    asyncio.run(publish())


def outcome(home: Path) -> dict[str, list[tuple[str, float | None]]]:
    """event key -> [(run state, run start as epoch seconds)] from the server's database."""
    db = sqlite3.connect(home / "twin.db")
    rows = db.execute(
        "SELECT e.key, e.body, r.state, r.started_at FROM events e"
        " JOIN deliveries d ON d.event_id = e.id LEFT JOIN runs r ON r.id = d.run_id"
    ).fetchall()
    db.close()
    found: dict[str, list[tuple[str, float | None]]] = {}
    for key, body, state, started in rows:
        import json

        data = json.loads(body).get("data")
        name = data.get("key") if isinstance(data, dict) and data.get("key") else key
        stamp = None
        if started:
            stamp = dt.datetime.fromisoformat(started).replace(tzinfo=dt.UTC).timestamp()
        found.setdefault(name, []).append((state or "none", stamp))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("folder", "nats"), default="folder")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill", action="store_true", help="kill -9 the server half-way")
    parser.add_argument("--parallel", type=int, default=4, help="TWIN_MAX_RUNS")
    parser.add_argument("--drain", type=float, default=120.0, help="limit to finish the runs")
    parser.add_argument(
        "--sandbox",
        choices=("both", "auto", "bwrap", "podman", "none"),
        default="both",
        help="TWIN_SANDBOX of the server; both: a burst with none, then one with auto",
    )
    args = parser.parse_args()
    code = 0
    for sandbox in ["none", "auto"] if args.sandbox == "both" else [args.sandbox]:
        print(f"--- TWIN_SANDBOX={sandbox}", flush=True)
        code |= burst(args, sandbox)
    print(sandbox_report(200))
    return code


def burst(args: argparse.Namespace, sandbox: str) -> int:
    """One burst of events against a fresh server; non-zero when an event was lost."""
    base = Path(tempfile.mkdtemp(prefix="twin-events-bench-"))
    home = base / "home"  # the watched folder lies outside the server's own files
    drop = base / "drop"
    drop.mkdir()
    subject = f"bench.{os.getpid()}"
    env = {"TWIN_MAX_RUNS": str(args.parallel), "TWIN_SANDBOX": sandbox}
    env["TWIN_WATCH_ROOTS"] = str(drop)  # a folder source may watch only such folders
    server = ServeProcess(home, env=env).start()
    token = server.token
    prepare(server, token, args.source, drop, subject)
    total = int(args.rate * args.seconds)
    sent: dict[str, float] = {}
    produce = produce_files if args.source == "folder" else produce_nats
    target = drop if args.source == "folder" else subject
    first = total // 2 if args.kill else total
    started = time.time()
    meter: CpuMeter | None = CpuMeter(server.process.pid).start()
    writer = threading.Thread(target=produce, args=(target, args.rate, first, 0, sent))
    writer.start()
    if args.kill:
        time.sleep(args.seconds / 4)
        assert meter is not None
        meter.stop()  # the CPU figures are of the uninterrupted bursts only
        meter = None
        os.kill(server.process.pid, signal.SIGKILL)  # mid-burst, the producer goes on
        print(f"killed twin serve (pid {server.process.pid}) at {time.time() - started:.1f} s")
        writer.join()
        server.stop()
        server = ServeProcess(home, env=env).start()
        rest = threading.Thread(
            target=produce, args=(target, args.rate, total - first, first, sent)
        )
        rest.start()
        rest.join()
    writer.join()
    produced = time.time() - started
    deadline = time.monotonic() + args.drain
    while time.monotonic() < deadline:
        found = outcome(home)
        finished = sum(
            1 for k in sent if any(s in ("succeeded", "failed") for s, _ in found.get(k, []))
        )
        if finished >= len(sent):
            break
        time.sleep(1)
    wall = time.time() - started
    used = meter.stop() if meter is not None else None
    found = outcome(home)
    server.stop()
    latencies = [
        min(t for _, t in found[k] if t) - sent[k]
        for k in sent
        if any(t for _, t in found.get(k, []))
    ]
    lost = [k for k in sent if k not in found or not any(t for _, t in found[k])]
    twice = [k for k in sent if len(found.get(k, [])) > 1]
    failed = [k for k in sent if any(s == "failed" for s, _ in found.get(k, []))]
    print(
        f"source {args.source}, {len(sent)} events at {args.rate:g}/s over {produced:.1f} s"
        + (" with a kill -9 half-way" if args.kill else "")
    )
    print(
        f"runs started for {len(latencies)} events, lost {len(lost)}, run twice "
        f"{len(twice)}, failed {len(failed)}; all done after {wall:.1f} s"
    )
    if latencies:
        print(
            f"event -> run start: p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms"
        )
        print(f"throughput: {len(latencies) / wall:.1f} runs/s")
    if used is not None and latencies:
        per = {name: seconds / len(latencies) * 1000 for name, seconds in used.items()}
        print(
            "CPU per run: server {server:.2f} ms, run workers {workers:.2f} ms, their steps "
            "(sandbox + command) {steps:.2f} ms, orphans reaped by init {orphans:.2f} ms, "
            "benchmark {producer:.2f} ms; machine busy {machine:.2f} ms".format(**per)
        )
    print(f"server home: {home}")
    return 1 if lost or twice else 0


if __name__ == "__main__":
    sys.exit(main())
