"""The events module's own defences, without a server: bounded YAML, RE2 patterns, sealed
and redacted secrets, names per project, per-project idempotency and the own-run rule."""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twinengine.cli.main import app
from twinengine.core import ConfigError, NotFoundError, StateError, get_database
from twinengine.core.boundedyaml import load_definition
from twinengine.core.secrets import SecretBox, is_sealed
from twinengine.events.base import Event, SourceState
from twinengine.events.patterns import compile_regex, regex_finds
from twinengine.events.queue import EventQueue
from twinengine.events.sourcesecrets import (
    redact,
    redacted_view,
    restore,
    scrub,
    seal,
    secret_values,
    unseal,
)
from twinengine.events.store import DefinitionStore
from twinengine.events.triggers import accepts, matches, parse_trigger

BOMB = (
    "name: laughs\nkind: webhook\n"
    "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
)


# -- YAML ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "words"),
    [
        (BOMB, "line 3: YAML anchor &a"),
        ("name: x\nkind: webhook\nsecret: *nowhere\n", "YAML alias"),
        ("base: {a: 1}\nname: x\n<<: {kind: webhook}\n", "line 3: YAML merge key <<"),
        ("a: " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 levels"),
        ("a: " + "x" * (70 * 1024) + "\n", "at most 65536 are accepted"),
        ("a: !!binary aGVsbG8=\n", "a bytes value is not allowed"),
        ("a: .nan\n", "not a finite number"),
        ("a: 9" + "9" * 30 + "\n", "the integer is too large"),
        ("a: [1, 2\n", "not valid YAML/JSON"),
    ],
)
def test_definitions_are_bounded_and_alias_free(text: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_definition(text, "the source definition")
    assert words in str(caught.value)
    assert "the source definition" in str(caught.value)


def test_plain_definitions_load_and_dates_stay_text() -> None:
    doc = load_definition('{"name": "x", "when": 2024-01-01, "n": [1, 2.5, true, null]}')
    assert doc == {"name": "x", "when": "2024-01-01", "n": [1, 2.5, True, None]}
    assert load_definition("'<<': 1\n") == {"<<": 1}  # a quoted key is only a key


def test_a_billion_laughs_trigger_is_refused_before_it_grows() -> None:
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="YAML anchor"):
        parse_trigger(BOMB.replace("kind: webhook", "source: s\nworkflow: w"))
    assert time.perf_counter() - started < 0.5


# -- patterns -----------------------------------------------------------------------------
def test_a_catastrophic_regex_matches_in_linear_time() -> None:
    spec = parse_trigger({"name": "t", "source": "s", "workflow": "w"} | {"filter": {}})
    spec["filter"] = {"key_regex": "^(a+)+$"}
    hostile = "a" * 200_000 + "b"
    started = time.perf_counter()
    assert not matches(spec, {"key": hostile})
    assert matches(spec, {"key": "a" * 50})
    assert time.perf_counter() - started < 0.2  # Python's re needs hours for 40 characters


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "invalid escape sequence"),
        ("(?=a)", "invalid perl operator"),
        ("(?<!a)b", "invalid perl operator"),
        ("x{1001}", "invalid repetition size"),
        ("((a{100}){100}){100}", "repetition"),
        ("a" * 2000, "at most 1024"),
    ],
)
def test_patterns_re2_cannot_take_are_refused_with_the_reason(pattern: str, reason: str) -> None:
    definition = {"name": "t", "source": "s", "workflow": "w", "filter": {"key_regex": pattern}}
    with pytest.raises(ConfigError) as caught:
        parse_trigger(definition)
    assert "filter.key_regex" in str(caught.value) and reason in str(caught.value)


def test_long_globs_are_refused() -> None:
    for field, value in (("key", "*" * 2000), ("metadata", {"station": "?" * 2000})):
        definition = {"name": "t", "source": "s", "workflow": "w", "filter": {field: value}}
        with pytest.raises(ConfigError, match=f"filter.{field}"):
            parse_trigger(definition)


def test_regexes_keep_their_meaning() -> None:
    assert regex_finds(r"\.csv$", "raw/a.csv") and not regex_finds(r"\.csv$", "a.csv.gz")
    assert compile_regex(r"^raw/\d+") is compile_regex(r"^raw/\d+")  # compiled once


# -- secrets ------------------------------------------------------------------------------
def test_secrets_are_redacted_and_restored_by_name_and_in_urls() -> None:
    stored = {
        "url": "https://twin:pa55word@dav.example.org/data",
        "servers": ["nats://u:tok3n@n1:4222", "nats://n2:4222"],
        "secret_key": "AKIASECRET",
        "token": "bearer-xyz",
        "auth": {"sasl_plain_password": "kafka-pw"},
        "bucket": "data",
    }
    shown = redact(stored)
    assert shown == {
        "url": "https://twin:***@dav.example.org/data",
        "servers": ["nats://u:***@n1:4222", "nats://n2:4222"],
        "secret_key": "***",
        "token": "***",
        "auth": {"sasl_plain_password": "***"},
        "bucket": "data",
    }
    assert restore(shown, stored) == stored  # sent back unchanged: every secret kept
    changed = {**shown, "token": "new-token", "bucket": "other"}
    assert restore(changed, stored) == {**stored, "token": "new-token", "bucket": "other"}
    assert "tok3n" in secret_values(stored) and "pa55word" in secret_values(stored)
    assert scrub("401 for https://twin:pa55word@dav", secret_values(stored)) == (
        "401 for https://twin:***@dav"
    )


def test_a_kind_may_declare_secrets_of_any_name_and_sealed_urls_keep_their_host(
    tmp_path: Path,
) -> None:
    declared = frozenset({"auth_header"})
    assert redact({"auth_header": "Basic xyz", "topic": "t"}, declared) == {
        "auth_header": "***",
        "topic": "t",
    }
    box = SecretBox(tmp_path / "secret.key")
    stored = seal({"url": "redis://:r3dis-pw@cache:6379/0", "auth_header": "h"}, box, declared)
    assert "r3dis-pw" not in json.dumps(stored) and is_sealed(stored["auth_header"])
    assert redacted_view(stored, box, declared) == {
        "url": "redis://:***@cache:6379/0",
        "auth_header": "***",
    }
    assert unseal(stored, box) == {"url": "redis://:r3dis-pw@cache:6379/0", "auth_header": "h"}


def test_the_secret_key_file_is_private_and_made_once(tmp_path: Path) -> None:
    key_file = tmp_path / "home" / "secret.key"
    boxes = [SecretBox(key_file) for _ in range(8)]
    sealed: list[str] = []
    plain = "plain-Passw0rd_text"
    threads = [threading.Thread(target=lambda b=b: sealed.append(b.seal(plain))) for b in boxes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert all(is_sealed(s) and plain not in s for s in sealed)
    assert {SecretBox(key_file).open(s) for s in sealed} == {plain}  # one key for all
    assert SecretBox(key_file).open("plain-legacy") == "plain-legacy"
    other = SecretBox(tmp_path / "other.key")
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        other.open(sealed[0])
    key_file.write_text("not a key")
    with pytest.raises(ConfigError, match="not hold a Fernet key"):
        SecretBox(key_file).seal("x")


def test_stored_sources_hold_no_plain_secret(twin_home: Path) -> None:
    store = DefinitionStore()
    store.add_source("name: hook\nkind: webhook\nsecret: hmac-s3cret-value\n", project="alpha")
    raw = sqlite3.connect(twin_home / "twin.db").execute("SELECT config FROM event_sources")
    config = json.loads(raw.fetchone()[0])
    assert is_sealed(config["secret"]) and "hmac-s3cret-value" not in json.dumps(config)
    assert store.source("hook")["config"]["secret"] == "***"
    assert store.sources()[0]["config"]["secret"] == "***"
    row = store.sealed_source("hook", "alpha")
    assert store.open_config(row)["secret"] == "hmac-s3cret-value"
    store.add_source({"name": "hook", "kind": "webhook", "secret": "***"}, "alpha", replace=True)
    assert store.open_config(store.sealed_source("hook", "alpha"))["secret"] == "hmac-s3cret-value"


def test_a_plain_row_written_before_sealing_still_works(twin_home: Path) -> None:
    store = DefinitionStore()
    store.add_source("name: hook\nkind: webhook\n", project="alpha")
    with get_database().engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE event_sources SET config = ? WHERE name = 'hook'",
            (json.dumps({"secret": "legacy-plain"}),),
        )
    assert store.source("hook", "alpha")["config"]["secret"] == "***"
    assert store.open_config(store.sealed_source("hook", "alpha"))["secret"] == "legacy-plain"
    store.add_source("name: hook\nkind: webhook\nsecret: '***'\n", "alpha", replace=True)
    sealed = store.sealed_source("hook", "alpha")["config"]["secret"]
    assert is_sealed(sealed) and store.open_config(store.sealed_source("hook", "alpha")) == {
        "secret": "legacy-plain"
    }


def test_a_redacted_secret_with_nothing_stored_behind_it_is_refused(twin_home: Path) -> None:
    store = DefinitionStore()
    for definition in (
        "name: hook\nkind: webhook\nsecret: '***'\n",
        "name: dav\nkind: webdav\nurl: 'https://u:***@dav.example.org'\n",
    ):
        with pytest.raises(ConfigError, match="no stored value"):
            store.add_source(definition, "alpha")
    store.add_source("name: hook\nkind: webhook\n", "alpha")
    with pytest.raises(ConfigError, match="no stored value"):  # nothing to keep there either
        store.add_source("name: hook\nkind: webhook\nsecret: '***'\n", "alpha", replace=True)


def test_a_config_error_never_repeats_a_secret(twin_home: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        DefinitionStore().add_source(
            {"name": "b", "kind": "s3", "secret_key": "sup3r-s3cret", "bucket": 7}, "alpha"
        )
    assert "sup3r-s3cret" not in str(caught.value)


# -- names per project --------------------------------------------------------------------
def test_names_are_per_project_and_replace_stays_in_its_project(twin_home: Path) -> None:
    store = DefinitionStore()
    store.add_source("name: hook\nkind: webhook\nsecret: alpha-secret\n", project="alpha")
    store.add_source("name: hook\nkind: webhook\n", project="beta", replace=True)
    assert {(s["project"], s["name"]) for s in store.sources()} == {
        ("alpha", "hook"),
        ("beta", "hook"),
    }
    assert store.open_config(store.sealed_source("hook", "alpha")) == {"secret": "alpha-secret"}
    with pytest.raises(StateError, match="several projects"):
        store.source("hook")
    with pytest.raises(NotFoundError) as hidden:
        store.source("hook", within=["gamma"])
    with pytest.raises(NotFoundError) as missing:
        store.source("ghost", within=["gamma"])
    assert str(hidden.value).replace("hook", "X") == str(missing.value).replace("ghost", "X")
    store.delete_source("hook", "beta")
    assert [s["project"] for s in store.sources()] == ["alpha"]


def test_the_same_event_in_two_projects_is_two_events(twin_home: Path) -> None:
    queue = EventQueue()
    event = Event("hook", "obs-1", version="1")
    assert queue.ingest(event, "alpha", [])[0] is not None
    assert queue.ingest(event, "beta", [])[0] is not None  # not swallowed as a repeat
    assert queue.ingest(event, "beta", [])[0] is None
    assert event.idempotency_key() == event.idempotency_key(None)  # kept for no project


def test_a_trigger_never_takes_the_end_of_its_own_run() -> None:
    spec = parse_trigger({"name": "again", "source": "runs", "workflow": "w"})
    candidate = {"name": "again", "project": "alpha", "spec": spec}
    own = {"source": "runs", "data": {"created_by": "trigger:again", "project": "alpha"}}
    other = {"source": "runs", "data": {"created_by": "trigger:other", "project": "alpha"}}
    namesake = {"source": "runs", "data": {"created_by": "trigger:again", "project": "beta"}}
    assert not accepts(candidate, own)
    assert accepts(candidate, other) and accepts(candidate, namesake)
    spec["filter"]["own_runs"] = True
    assert accepts(candidate, own)
    with pytest.raises(ConfigError, match="own_runs"):
        parse_trigger({"name": "t", "source": "runs", "workflow": "w", "filter": {"own_runs": 1}})


def test_a_cursor_kept_before_names_were_per_project_moves_once(tmp_path: Path) -> None:
    (tmp_path / "incoming.json").write_text('{"objects": {"a": "1"}}')
    state = SourceState.of(tmp_path, "alpha", "incoming")
    assert state.path == tmp_path / "alpha" / "incoming.json"
    assert state.load() == {"objects": {"a": "1"}}
    assert SourceState.of(tmp_path, "beta", "incoming").load() == {}


def test_the_cli_shows_no_secret_and_names_the_project(twin_home: Path) -> None:
    runner = CliRunner()
    for project in ("alpha", "beta"):
        (twin_home / f"{project}.yaml").write_text(
            f"name: hook\nkind: webhook\nsecret: {project}-cli-s3cret\n"
        )
        added = runner.invoke(
            app, ["sources", "add", str(twin_home / f"{project}.yaml"), "--project", project]
        )
        assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["sources", "list"])
    shown = runner.invoke(app, ["sources", "show", "hook", "--project", "beta"])
    assert listed.exit_code == 0 and shown.exit_code == 0, shown.output
    assert "cli-s3cret" not in listed.output + shown.output
    assert json.loads(shown.output)["config"] == {"secret": "***"}
    ambiguous = runner.invoke(app, ["sources", "show", "hook"])
    assert ambiguous.exit_code != 0 and "several projects" in ambiguous.output
    deleted = runner.invoke(app, ["sources", "delete", "hook", "--project", "beta"])
    assert deleted.exit_code == 0
    assert [s["project"] for s in DefinitionStore().sources()] == ["alpha"]
