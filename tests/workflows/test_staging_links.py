"""A file a run was given stays the file that was checked (issue 12's outside probe,
finding 1, from the workflows side): a reported file must never lie among the server's
own files whatever links lead there; a path of the job object that is behind a link by
the time the run stages it is no longer the run's own (cwltool's confined staging, and
the native path declines it); and a File or Directory object an expression built
without a location or basename fails the step with a message. Real folders, links,
SQLite and cwltool's own path mapper."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import pytest
from cwltool.argparser import arg_parser
from cwltool.errors import WorkflowException

from twinengine.core import InvalidInputError, Settings
from twinengine.workflows.fileroots import Roots, server_private
from twinengine.workflows.inputs import UploadStore, resolve_inputs
from twinengine.workflows.native import NotNative, load_native, read_job
from twinengine.workflows.staging import confined_runtime

CAT = (
    "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: cat\n"
    "inputs:\n  f: {type: File, inputBinding: {position: 1}}\n"
    "outputs:\n  out: {type: stdout}\nstdout: out.txt\n"
)


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    """A server home with another project's upload, a registered workflow and a run
    folder; a watched folder outside it holding a file a source reported."""
    home = tmp_path / "home"
    upload = home / "uploads" / "U1" / "x.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("ALPHA")
    workflow = home / "workflows" / "W1"
    workflow.mkdir(parents=True)
    (workflow / "main.cwl").write_text(CAT)
    run = home / "runs" / "R1"
    (run / "outputs").mkdir(parents=True)
    watched = tmp_path / "watch" / "swap"
    watched.mkdir(parents=True)
    (watched / "x.txt").write_text("decoy")
    return {"home": home, "upload": upload, "workflow": workflow, "run": run, "watched": watched}


def settings_of(home: Path, **extra: object) -> Settings:
    base = Settings(home=home, database_url=f"sqlite:///{home / 'twin.db'}", store=str(home))
    return replace(base, **extra)


def swap(layout: dict[str, Path]) -> None:
    """The probe's move: the watched folder replaced by a link to the upload's folder."""
    watched = layout["watched"]
    watched.rename(watched.with_name("old"))
    watched.symlink_to(layout["upload"].parent)


def test_granted_and_shared_roots_never_reach_hidden_ones(layout: dict[str, Path]) -> None:
    home, watched = layout["home"], layout["watched"]
    reported = watched / "x.txt"
    roots = Roots.of(granted=[reported], hidden=server_private(settings_of(home)))
    assert roots.allows(reported) == reported.resolve()
    swap(layout)
    assert roots.allows(watched / "x.txt") is None  # the same name now leads into the home
    assert Roots.of(own=[home]).allows(layout["upload"]) is not None  # the server's own
    private = server_private(settings_of(home, secret_key_file=home.parent / "key"))
    assert home.resolve() in private and (home.parent / "key").resolve() in private
    assert (home / "twin.db").resolve() in private


def test_resolve_inputs_refuses_a_reported_file_that_leads_into_the_home(
    layout: dict[str, Path],
) -> None:
    uploads = UploadStore(settings=settings_of(layout["home"]))
    interface = [{"id": "f", "type": "File"}]
    reported = (layout["watched"] / "x.txt").resolve()
    given = {"f": {"class": "File", "path": str(layout["watched"] / "x.txt")}}
    job = resolve_inputs(interface, given, project="b", uploads_store=uploads, reported=(reported,))
    assert job["f"]["path"] == str(reported)
    swap(layout)
    with pytest.raises(InvalidInputError, match="not found or not allowed"):
        resolve_inputs(interface, given, project="b", uploads_store=uploads, reported=(reported,))
    mine = uploads.save(io.BytesIO(b"mine"), "m.txt", project="b")
    mine_input = {"f": {"class": "File", "location": mine["location"]}}
    job = resolve_inputs(interface, mine_input, project="b", uploads_store=uploads)
    assert Path(job["f"]["path"]) == Path(job["f"]["path"]).resolve()  # a real path


def runtime(layout: dict[str, Path], named: Path) -> object:
    run = layout["run"]
    job = run / "job.json"
    job.write_text(json.dumps({"f": {"class": "File", "path": str(named)}}))
    argv = ["--outdir", str(run / "outputs"), str(layout["workflow"] / "main.cwl"), str(job)]
    args = arg_parser().parse_args(argv)
    return confined_runtime(args, layout["workflow"], run, settings_of(layout["home"]))


def test_a_job_path_behind_a_link_by_staging_time_is_refused(layout: dict[str, Path]) -> None:
    named = (layout["watched"] / "x.txt").resolve()  # what the server wrote: a real path
    before = runtime(layout, named)
    fs = before.make_fs_access("")  # type: ignore[attr-defined]
    assert fs.open(str(named), "r").read() == "decoy"
    swap(layout)
    after = runtime(layout, named)  # the run starts after the swap
    fs = after.make_fs_access("")  # type: ignore[attr-defined]
    with pytest.raises(WorkflowException, match="not found or not allowed"):
        fs.open(str(named), "r")
    mapper = after.path_mapper  # type: ignore[attr-defined]
    with pytest.raises(WorkflowException, match="not found or not allowed"):
        mapper([{"class": "File", "location": named.as_uri(), "basename": "x.txt"}], "", "/s")


def test_the_native_path_declines_a_job_file_behind_a_link(layout: dict[str, Path]) -> None:
    named = (layout["watched"] / "x.txt").resolve()
    job = layout["run"] / "job.json"
    job.write_text(json.dumps({"f": {"class": "File", "path": str(named)}}))
    process = load_native(str(layout["workflow"] / "main.cwl"))
    assert read_job(process, str(job), confined=True)["f"]["path"] == str(named)
    swap(layout)
    with pytest.raises(NotNative, match="behind a link"):
        read_job(process, str(job), confined=True)


@pytest.mark.parametrize(
    "obj",
    [
        {"class": "File", "location": "file:///etc/hostname"},  # no basename
        {"class": "File", "basename": "x"},  # no location
        {"class": "Directory", "location": "_:d", "basename": "d", "listing": "x"},
        {"class": "File", "location": "_:f", "basename": "f", "secondaryFiles": [1]},
    ],
)
def test_malformed_objects_fail_staging_with_a_message(layout: dict[str, Path], obj: dict) -> None:
    context = runtime(layout, (layout["watched"] / "x.txt").resolve())
    mapper = context.path_mapper  # type: ignore[attr-defined]
    with pytest.raises(WorkflowException, match="give location and basename"):
        mapper([obj], "/stage", "/s")
