"""Events on a shared server, probed from outside by tenants of two projects with
different roles: bounded key patterns (no ReDoS), names and actions that stay inside a
project, secrets never shown nor stored in plain text, triggers that reach only their
own project's functions and workflows, run events that stay in their project, and YAML
definitions that cannot blow up (issue 12, items 5, 6, 7, 9, 10 and 11)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ECHO, Live, start_server, wait_run
from tests.waiting import until
from twinengine.events.sources.webhook import sign
from twinengine.notify.webhook import SIGNATURE_HEADER

TWIN = Path(sys.executable).with_name("twin")


@dataclass
class Tenants:
    live: Live
    alice: str  # editor of alpha
    avery: str  # viewer of alpha
    bob: str  # editor of beta
    carol: str  # editor of gamma (run events)

    def client(self, token: str | None = "admin") -> httpx.Client:
        return self.live.client(token)


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    live = start_server(tmp_path_factory.mktemp("tenants"))
    found = Tenants(
        live,
        alice=live.user_token("alice", {"alpha": "editor"}),
        avery=live.user_token("avery", {"alpha": "viewer"}),
        bob=live.user_token("bob", {"beta": "editor"}),
        carol=live.user_token("carol", {"gamma": "editor"}),
    )
    with live.client() as admin:
        for project in ("default", "alpha", "beta", "gamma"):
            made = admin.post(
                "/api/v1/workflows",
                files={"file": ("echo.cwl", ECHO.read_bytes())},
                data={"project": project},
            )
            assert made.status_code == 201, made.text
    yield found
    live.stop()


def post_yaml(client: httpx.Client, path: str, text: str, **params: str) -> httpx.Response:
    headers = {"content-type": "application/yaml"}
    return client.post(path, content=text.encode(), headers=headers, params=params)


def deliveries(client: httpx.Client, trigger: str, **params: str) -> list[dict]:
    items = client.get("/api/v1/events", params={"limit": 500, **params}).json()["items"]
    return [d for e in items for d in e["deliveries"] if d["trigger"] == trigger]


def error(response: httpx.Response) -> str:
    return response.json()["error"]["message"]


# -- item 5: a hostile key_regex ------------------------------------------------------------
def test_a_hostile_key_regex_never_stalls_the_server(tenants: Tenants) -> None:
    with tenants.client(tenants.alice) as alice:
        assert post_yaml(alice, "/api/v1/sources", "name: keys\nkind: webhook\n", project="alpha")
        refused = post_yaml(
            alice,
            "/api/v1/triggers",
            "name: backref\nsource: keys\nworkflow: echo\nfilter: {key_regex: '(a)\\1'}\n",
            project="alpha",
        )
        assert refused.status_code == 400 and "invalid escape sequence" in error(refused)
        made = post_yaml(
            alice,
            "/api/v1/triggers",
            "name: hostile\nsource: keys\nworkflow: echo\ninputs: {message: $key}\n"
            "filter: {key_regex: '^(a+)+$'}\n",
            project="alpha",
        )
        assert made.status_code == 201, made.text
        slowest: list[float] = []
        posted: list[float] = []

        def attack() -> None:
            with tenants.client(tenants.alice) as client:
                for round_ in range(5):  # 10 keys of 50,000 characters a request
                    body = [
                        {"key": "a" * 50_000 + "b", "version": f"{round_}-{i}"} for i in range(10)
                    ]
                    started = time.perf_counter()
                    answer = client.post("/api/v1/events/keys", json=body)
                    posted.append(time.perf_counter() - started)
                    assert answer.status_code == 202, answer.text

        thread = threading.Thread(target=attack)
        thread.start()
        with httpx.Client(base_url=tenants.live.url, timeout=30) as anyone:
            while thread.is_alive():
                started = time.perf_counter()
                assert anyone.get("/health").status_code == 200
                slowest.append(time.perf_counter() - started)
                time.sleep(0.02)
        thread.join()
        assert len(posted) == 5 and max(posted) < 5.0
        assert slowest and max(slowest) < 0.5, slowest
        assert deliveries(alice, "hostile") == []  # 50 hostile keys, no match
        alice.post("/api/v1/events/keys", json={"key": "aaaa", "version": "ok"})
        assert until(lambda: deliveries(alice, "hostile"))


# -- item 6: names per project ------------------------------------------------------------
def test_another_project_can_neither_see_nor_replace_nor_delete(tenants: Tenants) -> None:
    secret = "alpha-hmac-secret"
    with tenants.client(tenants.alice) as alice, tenants.client(tenants.bob) as bob:
        made = post_yaml(
            alice, "/api/v1/sources", f"name: inbox\nkind: webhook\nsecret: {secret}\n",
            project="alpha",
        )  # fmt: skip
        assert made.status_code == 201, made.text
        post_yaml(
            alice, "/api/v1/triggers", "name: on-inbox\nsource: inbox\nworkflow: echo\n",
            project="alpha",
        )  # fmt: skip
        # a foreign name answers exactly like a missing one, and names no project
        for kind, name in (("sources", "inbox"), ("triggers", "on-inbox")):
            for params in ({}, {"project": "alpha"}):
                hidden = bob.get(f"/api/v1/{kind}/{name}", params=params)
                ghost = bob.get(f"/api/v1/{kind}/ghost-{name}", params=params)
                assert hidden.status_code == ghost.status_code == 404
                assert hidden.text.replace(name, "X") == ghost.text.replace(f"ghost-{name}", "X")
                assert "alpha" not in hidden.text
                for action in ("pause", "resume"):
                    answer = bob.post(f"/api/v1/{kind}/{name}/{action}", params=params)
                    assert answer.status_code == 404 and "alpha" not in answer.text
                assert bob.delete(f"/api/v1/{kind}/{name}", params=params).status_code == 404
        # replace=true in another project makes bob's own; alpha's stays as it was
        into_alpha = post_yaml(
            bob, "/api/v1/sources", "name: inbox\nkind: webhook\n", project="alpha", replace="true"
        )
        assert into_alpha.status_code == 404
        own = post_yaml(
            bob, "/api/v1/sources", "name: inbox\nkind: webhook\n", project="beta", replace="true"
        )
        assert own.status_code == 201 and own.json()["project"] == "beta"
        own_trigger = post_yaml(
            bob, "/api/v1/triggers", "name: on-inbox\nsource: inbox\nworkflow: echo\n",
            project="beta", replace="true",
        )  # fmt: skip
        assert own_trigger.status_code == 201, own_trigger.text
        assert bob.delete("/api/v1/triggers/on-inbox").status_code == 204  # his own
        assert bob.delete("/api/v1/sources/inbox").status_code == 204
        kept = alice.get("/api/v1/sources/inbox").json()
        assert kept["project"] == "alpha" and kept["config"] == {"secret": "***"}
        assert alice.get("/api/v1/triggers/on-inbox").json()["project"] == "alpha"
        body = json.dumps({"key": "k1"}).encode()  # the secret still checks alpha's posts
        signed = {SIGNATURE_HEADER: sign(body, secret), "content-type": "application/json"}
        assert alice.post("/api/v1/events/inbox", content=body, headers=signed).status_code == 202
        for params in ({}, {"project": "alpha"}):  # nor can he post to alpha's webhook
            posted = bob.post("/api/v1/events/inbox", json={"key": "x"}, params=params)
            assert posted.status_code == 404 and "alpha" not in posted.text
        # lists never show another project's items
        for path in ("/api/v1/sources", "/api/v1/triggers", "/api/v1/events"):
            assert "alpha" not in bob.get(path).text


def test_viewers_and_strangers_cannot_act_by_id(tenants: Tenants) -> None:
    with (
        tenants.client(tenants.alice) as alice,
        tenants.client(tenants.avery) as avery,
        tenants.client(tenants.bob) as bob,
    ):
        post_yaml(alice, "/api/v1/sources", "name: asks\nkind: webhook\n", project="alpha")
        post_yaml(
            alice, "/api/v1/triggers",
            "name: ask-first\nsource: asks\nworkflow: echo\napproval: true\n"
            "inputs: {message: $key}\nretries: {attempts: 1}\n",
            project="alpha",
        )  # fmt: skip
        event_id = alice.post("/api/v1/events/asks", json={"key": "k"}).json()["events"][0]
        waiting = until(lambda: alice.get("/api/v1/events/approvals").json()["items"])
        delivery = waiting[0]["id"]
        assert avery.get("/api/v1/sources/asks").status_code == 200  # a viewer sees …
        for path in (
            "/api/v1/sources/asks/pause",
            "/api/v1/triggers/ask-first/pause",
            "/api/v1/triggers/ask-first/resume",
            f"/api/v1/events/approvals/{delivery}",
            f"/api/v1/events/{event_id}/retry",
            "/api/v1/events/asks",
        ):
            assert avery.post(path, json={}).status_code == 403, path  # … but cannot act
        assert avery.delete("/api/v1/triggers/ask-first").status_code == 403
        for path, ghost in (
            (f"/api/v1/events/{event_id}", "/api/v1/events/nosuchevent0000"),
            (f"/api/v1/events/approvals/{delivery}", "/api/v1/events/approvals/nosuchdelivery00"),
            (f"/api/v1/events/{event_id}/retry", "/api/v1/events/nosuchevent0000/retry"),
        ):
            method = bob.get if path.endswith(event_id) else bob.post
            hidden, missing = method(path), method(ghost)
            assert hidden.status_code == missing.status_code == 404, path
            assert error(hidden).split("'")[0] == error(missing).split("'")[0]
            assert "alpha" not in hidden.text
        assert bob.get("/api/v1/events/approvals").json()["items"] == []
        assert alice.post(f"/api/v1/events/approvals/{delivery}").json()["state"] == "pending"


# -- item 7: secrets ----------------------------------------------------------------------
wsgidav_app = pytest.importorskip("wsgidav.wsgidav_app")
cheroot_wsgi = pytest.importorskip("cheroot.wsgi")
DAV_PASSWORD = "dav-pa55word-42"


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "dav"
    (root / "share").mkdir(parents=True)
    app = wsgidav_app.WsgiDAVApp(
        {
            "provider_mapping": {"/": str(root)},
            "simple_dc": {"user_mapping": {"*": {"twin": {"password": DAV_PASSWORD}}}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False},
            "logging": {"enable": False, "enable_loggers": []},
            "verbose": 0,
        }
    )
    server = cheroot_wsgi.Server(("127.0.0.1", 0), app)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.bind_addr[1]}", root / "share"
    server.stop()
    thread.join(5)


def test_secrets_are_never_shown_nor_stored_plain_and_survive_updates(
    tenants: Tenants, dav: tuple[str, Path]
) -> None:
    url, share = dav
    host = url.removeprefix("http://")
    definition = (
        f"name: dav\nkind: webdav\nurl: http://twin:{DAV_PASSWORD}@{host}\npath: /share\n"
        "interval: 0.1\n"
    )
    with tenants.client(tenants.alice) as alice, tenants.client(tenants.avery) as avery:
        made = post_yaml(alice, "/api/v1/sources", definition, project="alpha")
        assert made.status_code == 201, made.text
        assert DAV_PASSWORD not in made.text
        s3 = post_yaml(
            alice, "/api/v1/sources",
            "name: bucket\nkind: s3\nbucket: b\nendpoint_url: http://127.0.0.1:9\n"
            "access_key: AKIA1\nsecret_key: s3-secret-key-99\ninterval: 3600\n",
            project="alpha",
        )  # fmt: skip
        assert s3.status_code == 201, s3.text
        for answer in (avery.get("/api/v1/sources"), avery.get("/api/v1/sources/dav")):
            assert answer.status_code == 200
            assert DAV_PASSWORD not in answer.text and "s3-secret-key-99" not in answer.text
        shown = avery.get("/api/v1/sources/dav").json()["config"]
        assert shown["url"] == f"http://twin:***@{host}"
        assert avery.get("/api/v1/sources/bucket").json()["config"]["secret_key"] == "***"
        (share / "one.txt").write_text("1")
        first = until(lambda: alice.get("/api/v1/events", params={"source": "dav"}).json()["items"])
        assert DAV_PASSWORD not in json.dumps(first)
        assert first[0]["body"]["location"].startswith(url)  # no user part in a location
        # the editor sends back what GET showed: the stored password is kept and works
        resent = {"name": "dav", "kind": "webdav", **shown}
        replaced = alice.post(
            "/api/v1/sources", json=resent, params={"project": "alpha", "replace": "true"}
        )
        assert replaced.status_code == 201, replaced.text
        (share / "two.txt").write_text("2")
        keys = lambda: {e["key"] for e in alice.get("/api/v1/events").json()["items"]}  # noqa: E731
        assert until(lambda: "two.txt" in keys())
        assert alice.get("/api/v1/sources/dav").json()["status"] == "ok"
        # a wrong one takes effect (so the check above can fail) and is never echoed
        wrong = {**resent, "url": f"http://twin:wrong-pa55word-7@{host}"}
        alice.post("/api/v1/sources", json=wrong, params={"project": "alpha", "replace": "true"})
        down = until(
            lambda: (
                (s := alice.get("/api/v1/sources/dav").json())["status"] in ("retrying", "down")
                and s
            )
        )
        assert down["error"] and "wrong-pa55word-7" not in json.dumps(down)
    home = tenants.live.settings.home
    assert stat.S_IMODE((home / "secret.key").stat().st_mode) == 0o600
    stored = b"".join(p.read_bytes() for p in home.glob("twin.db*"))
    for plain in (DAV_PASSWORD, "s3-secret-key-99", "alpha-hmac-secret", "wrong-pa55word-7"):
        assert plain.encode() not in stored, plain


# -- item 9: a trigger reaches only its own project's functions and workflows --------------
SCRIPT = "import json,sys; e=json.load(sys.stdin); print(json.dumps({'up': '%s'}))"


def test_triggers_use_only_their_own_projects_functions_and_workflows(tenants: Tenants) -> None:
    with tenants.client(tenants.alice) as alice, tenants.client(tenants.bob) as bob:
        alpha_fn = {"name": "clean", "kind": "command", "project": "alpha",
                    "target": ["python3", "-c", SCRIPT % "ALPHA"]}  # fmt: skip
        assert alice.post("/api/v1/functions", json=alpha_fn).status_code == 201
        call = alice.post("/api/v1/functions/clean/invoke", json={"key": "k"}).json()
        assert call["result"] == {"up": "ALPHA"}
        for hidden, ghost in (
            (f"/api/v1/functions/calls/{call['id']}", "/api/v1/functions/calls/nosuchcall000000"),
            ("/api/v1/functions/clean/logs", "/api/v1/functions/ghost/logs"),
            ("/api/v1/functions/clean/calls", "/api/v1/functions/ghost/calls"),
            ("/api/v1/functions/clean", "/api/v1/functions/ghost"),
        ):
            seen, missing = bob.get(hidden), bob.get(ghost)
            assert seen.status_code == missing.status_code == 404, hidden
            assert error(seen).split("'")[0] == error(missing).split("'")[0]
            assert seen.json()["error"]["hint"] == missing.json()["error"]["hint"]
        invoked = bob.post("/api/v1/functions/clean/invoke", json={})
        assert invoked.status_code == 404 and "alpha" not in invoked.text
        post_yaml(bob, "/api/v1/sources", "name: feed\nkind: webhook\n", project="beta")
        foreign = post_yaml(
            bob, "/api/v1/triggers",
            "name: borrow\nsource: feed\nfunction: clean\nworkflow: echo\n"
            "inputs: {message: $result.up}\n",
            project="beta",
        )  # fmt: skip
        assert foreign.status_code in (400, 404) and "no function 'clean'" in error(foreign)
        assert "alpha" not in foreign.text
        alpha_workflow = alice.get("/api/v1/workflows", params={"project": "alpha"}).json()
        workflow_id = alpha_workflow["items"][0]["id"]
        by_id = post_yaml(
            bob, "/api/v1/triggers", f"name: borrow\nsource: feed\nworkflow: {workflow_id}\n",
            project="beta",
        )  # fmt: skip
        assert by_id.status_code in (400, 404) and "no workflow" in error(by_id)
        source_elsewhere = post_yaml(
            bob, "/api/v1/triggers", "name: borrow\nsource: keys\nworkflow: echo\n",
            project="beta",
        )  # fmt: skip
        assert source_elsewhere.status_code == 400 and "no event source 'keys'" in error(
            source_elsewhere
        )
        # checked again when it fires: beta's own "prep" deleted, alpha makes a "prep"
        beta_fn = {"name": "prep", "kind": "command", "project": "beta",
                   "target": ["python3", "-c", SCRIPT % "BETA"]}  # fmt: skip
        assert bob.post("/api/v1/functions", json=beta_fn).status_code == 201
        made = post_yaml(
            bob, "/api/v1/triggers",
            "name: prepped\nsource: feed\nfunction: prep\nworkflow: echo\n"
            "inputs: {message: $result.up}\nretries: {attempts: 1}\n",
            project="beta",
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert bob.delete("/api/v1/functions/prep").status_code == 204
        alpha_prep = {**beta_fn, "project": "alpha", "target": ["python3", "-c", SCRIPT % "A"]}
        assert alice.post("/api/v1/functions", json=alpha_prep).status_code == 201
        bob.post("/api/v1/events/feed", json={"key": "k"})
        dead = until(lambda: [d for d in deliveries(bob, "prepped") if d["state"] == "dead"])
        assert "no function 'prep'" in dead[0]["error"] and dead[0]["run_id"] is None
        assert alice.get("/api/v1/functions/prep/calls").json()["items"] == []  # never ran


def test_function_names_are_per_project(tenants: Tenants) -> None:
    """alpha and beta both deploy ``tidy``: neither learns of the other's, each runs its
    own (also from a trigger), and a foreign name answers byte for byte like a missing one."""
    with tenants.client(tenants.alice) as alice, tenants.client(tenants.bob) as bob:
        alpha_fn = {"name": "tidy", "kind": "command", "project": "alpha",
                    "target": ["python3", "-c", SCRIPT % "ALPHA"]}  # fmt: skip
        assert alice.post("/api/v1/functions", json=alpha_fn).status_code == 201
        alpha_call = alice.post("/api/v1/functions/tidy/invoke", json={}).json()
        for params in ({}, {"project": "alpha"}):
            for method, path in (
                ("GET", ""), ("GET", "/calls"), ("GET", "/logs"), ("POST", "/invoke"),
                ("DELETE", ""),
            ):  # fmt: skip
                hidden = bob.request(method, f"/api/v1/functions/tidy{path}", params=params)
                ghost = bob.request(method, f"/api/v1/functions/ghost{path}", params=params)
                assert hidden.status_code == ghost.status_code == 404, (method, path, params)
                assert hidden.text.replace("tidy", "X") == ghost.text.replace("ghost", "X")
        beta_fn = {**alpha_fn, "project": "beta", "target": ["python3", "-c", SCRIPT % "BETA"]}
        made = bob.post("/api/v1/functions", json=beta_fn)  # the name is free in beta
        assert made.status_code == 201 and "alpha" not in made.text
        assert bob.post("/api/v1/functions/tidy/invoke", json={}).json()["result"] == {"up": "BETA"}
        assert alice.post("/api/v1/functions/tidy/invoke", json={}).json()["result"] == {
            "up": "ALPHA"
        }
        hidden = bob.get("/api/v1/functions/tidy", params={"project": "alpha"})
        assert hidden.status_code == 404 and "alpha" not in hidden.text
        assert bob.get(f"/api/v1/functions/calls/{alpha_call['id']}").status_code == 404
        # beta's trigger runs beta's tidy, alpha's is never called by it
        post_yaml(bob, "/api/v1/sources", "name: tidy-feed\nkind: webhook\n", project="beta")
        made = post_yaml(
            bob, "/api/v1/triggers",
            "name: tidied\nsource: tidy-feed\nfunction: tidy\nworkflow: echo\n"
            "inputs: {message: $result.up}\n",
            project="beta",
        )  # fmt: skip
        assert made.status_code == 201, made.text
        assert bob.post("/api/v1/events/tidy-feed", json={"key": "t1"}).status_code == 202
        ran = until(lambda: [d for d in deliveries(bob, "tidied") if d["run_id"]], timeout=60)
        run = wait_run(bob, ran[0]["run_id"])
        assert run["state"] == "succeeded", run
        said = bob.get(f"/api/v1/runs/{run['id']}/outputs").json()["outputs"]["output"]
        assert bob.get(said["download"]).text == "BETA\n"
        assert len(bob.get("/api/v1/functions/tidy/calls").json()["items"]) == 2
        assert len(alice.get("/api/v1/functions/tidy/calls").json()["items"]) == 2  # her own
        assert bob.delete("/api/v1/functions/tidy").status_code == 204  # his, not hers
        assert alice.get("/api/v1/functions/tidy").json()["project"] == "alpha"


# -- item 10: run events stay in their project ---------------------------------------------
def test_run_events_reach_only_their_projects_and_admins_triggers(tenants: Tenants) -> None:
    live = tenants.live
    with tenants.client() as admin, tenants.client(tenants.carol) as carol:
        made = post_yaml(
            admin, "/api/v1/triggers",
            "name: cli-runs\nsource: runs\nfilter: {states: [succeeded]}\nworkflow: echo\n"
            "inputs: {message: $key}\n",
            project="default",
        )  # fmt: skip
        assert made.status_code == 201, made.text
        admins = made.json()
        made = post_yaml(
            carol, "/api/v1/triggers",
            "name: every-run\nsource: runs\nworkflow: echo\ninputs: {message: $key}\n",
            project="gamma",
        )  # fmt: skip
        assert made.status_code == 201, made.text
        carols = made.json()
        env = {**os.environ, "TWIN_HOME": str(live.settings.home)}
        env["TWIN_DATABASE_URL"] = live.settings.database_url
        cli = subprocess.run(
            [str(TWIN), "run", str(ECHO), "--message", "from the command line"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        fired = until(lambda: [d for d in deliveries(admin, "cli-runs") if d["run_id"]], 30)
        event = admin.get(f"/api/v1/events/{fired[0]['event_id']}").json()
        assert event["project"] is None and event["source"] == "runs"
        # gamma's unfiltered trigger: not the CLI run, not another project's runs …
        with tenants.client(tenants.alice) as alice:
            workflow = alice.get("/api/v1/workflows", params={"project": "alpha"}).json()
            started = alice.post(
                "/api/v1/runs",
                json={"workflow": workflow["items"][0]["id"], "inputs": {"message": "alpha"}},
            )
            assert wait_run(alice, started.json()["id"])["state"] == "succeeded"
        # … only gamma's own run, and then not the run it started itself
        workflow = carol.get("/api/v1/workflows", params={"project": "gamma"}).json()
        started = carol.post(
            "/api/v1/runs",
            json={"workflow": workflow["items"][0]["id"], "inputs": {"message": "gamma"}},
        )
        assert started.status_code == 201, started.text
        chained = until(lambda: [d for d in deliveries(carol, "every-run") if d["run_id"]], 30)
        assert wait_run(carol, chained[0]["run_id"])["created_by"] == "trigger:every-run"
        time.sleep(2.0)  # the runs source polls every 0.5 s: time for a loop to show
        assert len(deliveries(carol, "every-run")) == 1
        seen_by_carol = {d["event_id"] for d in deliveries(admin, "every-run")}
        assert fired[0]["event_id"] not in seen_by_carol  # not the CLI run's end
        assert len(seen_by_carol) == 1  # nor alpha's run's
        assert carol.get(f"/api/v1/events/{fired[0]['event_id']}").status_code == 404
        assert admins["admin"] is True and carols["admin"] is False


# -- item 11: YAML that would blow up ------------------------------------------------------
LAUGHS = (
    "name: laughs\nkind: cron\nevery: 3600\n"
    "data:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    "  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "  d: [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
)


def test_yaml_bombs_deep_nesting_and_huge_definitions_are_refused(tenants: Tenants) -> None:
    with tenants.client(tenants.alice) as alice:
        for path, text, words in (
            ("/api/v1/sources", LAUGHS, "line 5: YAML anchor &a"),
            (
                "/api/v1/triggers",
                LAUGHS.replace("kind: cron", "source: keys\nworkflow: echo"),
                "line 6: YAML anchor &a",
            ),
            (
                "/api/v1/sources",
                "name: m\nkind: webhook\nbase: {a: 1}\n<<: {b: 2}\n",
                "line 4: YAML merge key",
            ),
        ):
            answer = post_yaml(alice, path, text, project="alpha")
            assert answer.status_code == 400, answer.text[:300]
            assert words in error(answer)
        deep = "name: deep\nkind: cron\nevery: 60\ndata: " + "[" * 100 + "]" * 100 + "\n"
        assert "nested more than" in error(post_yaml(alice, "/api/v1/sources", deep))
        huge = "name: huge\nkind: cron\nevery: 60\ndata: '" + "x" * 100_000 + "'\n"
        too_big = post_yaml(alice, "/api/v1/sources", huge, project="alpha")
        assert too_big.status_code in (400, 413) and "huge" not in alice.get("/api/v1/sources").text
        names = {s["name"] for s in alice.get("/api/v1/sources").json()["items"]}
        assert not names & {"laughs", "m", "deep", "huge"}
