"""What a sandboxed step's outputs make the run process list, read and start.

Real bubblewrap, real runs of the engine (both paths), as ``twin serve`` runs them: an
output glob is refused before it is expanded when it is absolute, has a ``..`` or goes
through a link to a folder elsewhere — with one message naming the pattern, the same
whether what it names outside exists or not (no existence oracle, no file names);
``cwl.output.json`` paths, secondary files and ``outputEval`` see nothing outside
either; what the run process reads of the outputs is bounded (bytes:
``sandbox_output_mb``, files: ``sandbox_output_files``, sparse files, named pipes, the
size of ``cwl.output.json``); a NUL byte in a command line or its environment fails
the step with a message instead of breaking the run; ``twin run`` is unchanged.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

import twinengine.core
from tests.workflows.helpers import run_in_process, twin, write_job
from twinengine.core import get_settings
from twinengine.workflows.executors.base import JobSpec, run_blocking
from twinengine.workflows.executors.local import LocalExecutor
from twinengine.workflows.runs import RunStore
from twinengine.workflows.sandbox import probe

pytestmark = pytest.mark.skipif(
    probe("bwrap", get_settings()) is not None, reason="bubblewrap cannot start here"
)

TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c]
inputs:
  script: {{type: string, inputBinding: {{position: 1}}}}
{extra}
"""
JS = "requirements: {InlineJavascriptRequirement: {}}\n"


def tool(tmp_path: Path, extra: str) -> str:
    path = tmp_path / f"tool-{len(list(tmp_path.glob('tool-*')))}.cwl"
    path.write_text(TOOL.format(extra=extra))
    return str(path)


def boxed(
    tmp_path: Path, doc: str, script: str, native: bool, sandbox: str | None = "bwrap", **job
) -> tuple[int, dict | None, dict, list[str]]:
    """Run ``doc`` with ``script``: exit code, outputs, the run record, step messages."""
    job_file = write_job(tmp_path / f"job-{len(list(tmp_path.glob('job-*')))}.json",
                         {"script": script, **job})  # fmt: skip
    out = tmp_path / f"out-{len(list(tmp_path.glob('out-*')))}"
    code, outputs, opts = run_in_process(
        ["--outdir", str(out), doc, str(job_file)], sandbox=sandbox, native=native
    )
    store = RunStore()
    messages = [s.get("message") or "" for s in store.steps(opts.run_id)]
    return code, outputs, store.get(opts.run_id), messages


def files_glob(pattern: str, kind: str = "File[]") -> str:
    return f"outputs: {{o: {{type: '{kind}', outputBinding: {{glob: '{pattern}'}}}}}}"


@pytest.fixture
def outside() -> Path:
    """Files in the server's home beside the run folders, as another project's are."""
    home = get_settings().home
    folder = home / "uploads" / "alpha-upload"
    folder.mkdir(parents=True)
    (folder / "alpha-secret.txt").write_text("alpha's")
    return home


BOTH = pytest.mark.parametrize("native", [True, False], ids=["native", "cwltool"])


@BOTH
@pytest.mark.parametrize(
    ("script", "pattern"),
    [
        ("true", "../../../../uploads/*/*"),
        ("true", "../../../../*"),
        ("true", "../../../../uploads/*/nonexist*"),
        ("true", "sub/../../../../../uploads/*/alpha-secret.txt"),
        ("ln -s HOME/uploads l", "l/*/*"),
        ("ln -s HOME/uploads l", "l/alpha-upload/alpha-secret.txt"),
        ("ln -s HOME/uploads l", "l/alpha-upload/nonexist.txt"),
        ("mkdir d; ln -s HOME/uploads/alpha-upload e", "*/alpha-secret.txt"),
        ("mkdir d; ln -s HOME/uploads/alpha-upload e", "*/nonexist.txt"),
    ],
)
def test_a_glob_reaching_outside_is_refused_before_it_is_expanded(
    tmp_path: Path, outside: Path, native: bool, script: str, pattern: str
) -> None:
    doc = tool(tmp_path, files_glob(pattern))
    code, outputs, _, messages = boxed(tmp_path, doc, script.replace("HOME", str(outside)), native)
    assert code != 0 and not outputs, outputs  # never an empty list: that would tell
    text = "\n".join(messages)
    assert f"glob {pattern!r} reaches outside the step's working folder" in text, text
    for name in ("alpha-secret.txt'", "alpha-upload'", "twin.db", "mlflow", str(outside)):
        assert name not in text.replace(pattern, ""), text


@BOTH
def test_globs_inside_the_folder_still_match(tmp_path: Path, native: bool) -> None:
    doc = tool(tmp_path, files_glob("d/*.txt"))
    code, outputs, _, messages = boxed(
        tmp_path, doc, "mkdir d e; echo a > d/a.txt; echo b > d/b.txt; ln -s ../d e/l", native
    )
    assert code == 0, messages
    assert [f["basename"] for f in outputs["o"]] == ["a.txt", "b.txt"]


def test_an_expression_glob_with_the_folder_and_dotdot_is_refused(
    tmp_path: Path, outside: Path
) -> None:
    doc = tool(tmp_path, JS + files_glob('$(runtime.outdir + "/../../../../uploads/*/*")'))
    code, _, _, messages = boxed(tmp_path, doc, "true", native=False)
    text = "\n".join(messages)
    assert code != 0 and "'../../../../uploads/*/*' reaches outside" in text, text
    assert "alpha-secret" not in text


@pytest.mark.parametrize("name", ["alpha-secret.txt", "nonexist.txt"])
def test_output_eval_sees_nothing_outside(tmp_path: Path, outside: Path, name: str) -> None:
    doc = tool(
        tmp_path,
        JS + "outputs:\n  o:\n    type: int\n    outputBinding:\n"
        f"      glob: '*/{name}'\n      outputEval: $(self.length)",
    )
    script = f"mkdir d; ln -s {outside}/uploads/alpha-upload e"
    code, outputs, _, messages = boxed(tmp_path, doc, script, native=False)
    assert code != 0 and not outputs, outputs  # the same for a file there or not
    assert f"glob '*/{name}' reaches outside" in "\n".join(messages), messages


@BOTH
@pytest.mark.parametrize("name", ["alpha-secret.txt", "nonexist.txt"])
def test_cwl_output_json_paths_with_dotdot_are_refused_as_written(
    tmp_path: Path, outside: Path, native: bool, name: str
) -> None:
    written = f"../../../../uploads/alpha-upload/{name}"
    custom = json.dumps({"o": {"class": "File", "path": written}})
    doc = tool(tmp_path, "outputs: {o: File}")
    code, _, _, messages = boxed(tmp_path, doc, f"echo '{custom}' > cwl.output.json", native)
    text = "\n".join(messages)
    assert code != 0 and f"{written!r} leads outside" in text, text


@pytest.mark.parametrize("name", ["alpha-secret.txt", "nonexist.txt"])
def test_secondary_files_outside_are_refused(tmp_path: Path, outside: Path, name: str) -> None:
    doc = tool(
        tmp_path,
        "outputs:\n  o:\n    type: File\n    outputBinding: {glob: out.txt}\n"
        f"    secondaryFiles: [{{pattern: '../../../../uploads/alpha-upload/{name}', "
        "required: false}]",
    )
    code, outputs, _, messages = boxed(tmp_path, doc, "echo x > out.txt", native=False)
    assert code != 0 and not outputs
    assert any("leads outside" in m for m in messages), messages


# -- what collecting outputs costs the run process ----------------------------------


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch):
    def set_limits(**values: int) -> None:
        for key, value in values.items():
            monkeypatch.setenv(f"TWIN_SANDBOX_{key.upper()}", str(value))
        twinengine.core.reset()

    return set_limits


@BOTH
def test_sparse_output_files_are_refused(tmp_path: Path, native: bool) -> None:
    doc = tool(tmp_path, files_glob("big*.bin"))
    script = "for i in 1 2 3; do truncate -s 1G big$i.bin; done"
    code, _, _, messages = boxed(tmp_path, doc, script, native)
    text = "\n".join(messages)
    assert code != 0 and "output 'big1.bin' is a sparse file" in text, text


@BOTH
def test_a_small_sparse_file_and_dense_files_are_collected(tmp_path: Path, native: bool) -> None:
    doc = tool(tmp_path, files_glob("f*.bin"))
    script = "truncate -s 1M f1.bin; head -c 300000 /dev/zero > f2.bin"
    code, outputs, _, messages = boxed(tmp_path, doc, script, native)
    assert code == 0, messages
    assert [f["size"] for f in outputs["o"]] == [1 << 20, 300000]


@BOTH
def test_the_total_bytes_read_are_bounded(tmp_path: Path, native: bool, limits) -> None:
    limits(output_mb=1)
    doc = tool(tmp_path, files_glob("f*.bin"))
    script = "head -c 600000 /dev/urandom > f1.bin; head -c 600000 /dev/urandom > f2.bin"
    code, _, _, messages = boxed(tmp_path, doc, script, native)
    text = "\n".join(messages)
    assert code != 0 and "more than 1 MiB" in text and "sandbox_output_mb" in text, text


@BOTH
def test_the_number_of_output_files_is_bounded(tmp_path: Path, native: bool, limits) -> None:
    limits(output_files=3)
    doc = tool(tmp_path, files_glob("f*"))
    code, _, _, messages = boxed(tmp_path, doc, "touch f1 f2 f3 f4 f5", native)
    text = "\n".join(messages)
    assert code != 0 and "more than 3 output files" in text, text
    assert "sandbox_output_files" in text


@BOTH
def test_named_pipes_are_refused_not_read(tmp_path: Path, native: bool) -> None:
    pipe_out = tool(tmp_path, files_glob("p", "File"))
    code, _, _, messages = boxed(tmp_path, pipe_out, "mkfifo p", native)
    assert code != 0 and any("not a" in m for m in messages), messages
    custom = tool(tmp_path, "outputs: {o: File}")
    code, _, _, messages = boxed(tmp_path, custom, "mkfifo cwl.output.json", native)
    assert code != 0 and any("not a regular file" in m for m in messages), messages


@BOTH
def test_a_huge_cwl_output_json_is_refused(tmp_path: Path, native: bool) -> None:
    doc = tool(tmp_path, "outputs: {o: string}")
    script = "printf '{\"o\": \"' > cwl.output.json; head -c 20000000 /dev/zero | tr '\\0' a"
    script += " >> cwl.output.json; printf '\"}' >> cwl.output.json"
    code, _, _, messages = boxed(tmp_path, doc, script, native)
    text = "\n".join(messages)
    assert code != 0 and "'cwl.output.json' holds 20000009 bytes, more than the 16 MiB" in text, (
        text
    )


@BOTH
def test_twin_run_without_the_sandbox_collects_as_before(tmp_path: Path, native: bool) -> None:
    doc = tool(tmp_path, files_glob("big*.bin"))
    code, outputs, _, messages = boxed(tmp_path, doc, "truncate -s 100M big1.bin", native, None)
    assert code == 0, messages
    assert outputs["o"][0]["size"] == 100 << 20


# -- a command that cannot be started ------------------------------------------------

NUL_NATIVE = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  script: {type: string, inputBinding: {position: 1}}
outputs: {o: stdout}
"""
NUL_ARG = JS + "arguments: ['$(\"a\" + String.fromCharCode(0))']\noutputs: {o: stdout}"
NUL_ENV = (
    "requirements:\n  InlineJavascriptRequirement: {}\n  EnvVarRequirement:\n"
    "    envDef: {X: '$(\"a\" + String.fromCharCode(0))'}\noutputs: {o: stdout}"
)


@pytest.mark.parametrize("sandbox", ["bwrap", None], ids=["confined", "plain"])
@pytest.mark.parametrize(
    ("case", "native", "expected"),
    [
        ("native-input", True, "an argument holds a NUL byte"),
        ("cwltool-argument", False, "an argument holds a NUL byte"),
        ("cwltool-env", False, "the environment variable 'X' holds a NUL byte"),
    ],
)
def test_a_nul_byte_fails_the_step_not_the_run(
    tmp_path: Path, sandbox: str | None, case: str, native: bool, expected: str
) -> None:
    if case == "native-input":
        doc = tmp_path / "nul.cwl"
        doc.write_text(NUL_NATIVE)
        script = "a\u0000b"
    else:
        doc = Path(tool(tmp_path, NUL_ARG if case == "cwltool-argument" else NUL_ENV))
        script = "true"
    code, _, run, messages = boxed(tmp_path, str(doc), script, native, sandbox)
    assert code != 0
    assert run["state"] == "failed", run
    steps = RunStore().steps(run["id"])
    assert [s["state"] for s in steps] == ["failed"], steps
    assert any(f"could not start the command: {expected}" in m for m in messages), messages


def _unstartable(tmp_path: Path, sandbox: str | None) -> dict[str, JobSpec]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    base = JobSpec(key="", argv=["echo", "x"], cwd=str(work), env={"PATH": "/usr/bin:/bin"},
                   sandbox=sandbox, writable=(str(work),) if sandbox else ())  # fmt: skip
    return {
        "an argument holds a NUL byte": replace(base, key="argv", argv=["echo", "a\0b"]),
        "the environment variable 'X' holds a NUL byte": replace(
            base, key="env", env={**base.env, "X": "a\0b"}
        ),
        "the file name of its stdout holds a NUL byte": replace(
            base, key="stdout", stdout_path=str(work / "a\0b")
        ),
        "the environment variable name 'A=B' is not valid": replace(
            base, key="name", env={**base.env, "A=B": "c"}
        ),
    }


@pytest.mark.parametrize("sandbox", ["bwrap", None], ids=["confined", "plain"])
def test_the_executors_report_what_they_cannot_start(tmp_path: Path, sandbox: str | None) -> None:
    specs = _unstartable(tmp_path, sandbox)
    executor = LocalExecutor(cores=2, ram_mb=0)
    for spec in specs.values():
        executor.submit(spec)  # never raises
    results = {r.key: r for r in executor.wait(1)}
    executor.close()
    blocking = {spec.key: run_blocking(spec) for spec in specs.values()}  # the Dask path
    for why, spec in specs.items():
        for result in (results[spec.key], blocking[spec.key]):
            assert result.exit_code == 127 and result.error is not None, result
            assert result.error.startswith(why), result.error


@pytest.mark.slow
def test_a_nul_byte_fails_the_step_on_the_dask_executor(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    doc = tool(tmp_path, NUL_ARG)
    job = write_job(tmp_path / "nul.json", {"script": "true"})
    code, _, opts = run_in_process(
        ["--outdir", str(tmp_path / "o"), doc, str(job)], sandbox="bwrap", executor="dask",
        cores=1,
    )  # fmt: skip
    store = RunStore()
    run = store.get(opts.run_id)
    assert code != 0 and (run["state"], run["executor"]) == ("failed", "dask"), run
    steps = store.steps(opts.run_id)
    assert [s["state"] for s in steps] == ["failed"], steps
    assert "could not start the command: an argument holds a NUL byte" in steps[0]["message"]


@BOTH
def test_a_named_pipe_in_place_of_a_stream_does_not_block_the_run(
    tmp_path: Path, native: bool
) -> None:
    doc = tool(tmp_path, "stderr: err.txt\noutputs: {o: stderr}")
    job = write_job(tmp_path / "fifo.json", {"script": "rm err.txt; mkfifo err.txt; exit 1"})
    flag = "--native" if native else "--no-native"
    done = twin("run", "--sandbox", "bwrap", flag, "--quiet", "--outdir", str(tmp_path / "o"),
                doc, str(job), timeout=60)  # fmt: skip
    assert done.returncode != 0, done.stderr  # in seconds: the run process never opened it
    assert "cannot collect outputs" in done.stderr, done.stderr
