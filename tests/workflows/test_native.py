"""The native path: which documents it takes, and that it runs them exactly as cwltool.

Every equivalence test runs the same document twice in-process — once on the native
path, once forced through cwltool (``native=False``) — and compares the output objects
and the command lines stored in the run records.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from tests.workflows.helpers import run_in_process, write_job
from twinengine.workflows import RunOptions, RunStore, run_cwl
from twinengine.workflows.native import NotNative, load_native, read_job

run = run_in_process


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def portable(value):
    """An output object without the parts that differ between two runs (folders, and the
    random name CWL gives an unnamed ``stdout`` capture)."""
    if isinstance(value, list):
        return [portable(v) for v in value]
    if isinstance(value, dict):
        if value.get("class") == "File":
            keep = ("class", "checksum", "size")
            if not re.fullmatch(r"[0-9a-f]{40}", value["basename"]):
                keep += ("basename",)
            return {k: value[k] for k in keep}
        return {k: portable(v) for k, v in value.items()}
    return value


def both(tmp_path: Path, doc: Path, job: dict | None) -> tuple[dict, dict, list, list]:
    """Run ``doc`` on both paths; returns outputs and stored command lines of each."""
    results = []
    for native in (True, False):
        args = [f"--outdir={tmp_path / ('n' if native else 'c')}", str(doc)]
        if job is not None:
            args.append(str(write_job(tmp_path / f"job-{native}.json", job)))
        code, out, opts = run(args, native=native)
        assert code == 0, f"native={native} failed"
        assert opts.loader == ("native" if native else "cwltool")
        steps = sorted(RunStore().steps(opts.run_id), key=lambda s: s["name"])
        results.append((out, [s["command_line"] for s in steps]))
    (n_out, n_cmd), (c_out, c_cmd) = results
    return n_out, c_out, n_cmd, c_cmd


TOOL = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [printf, "%s|"]
arguments:
  - first
  - {valueFrom: late, position: 5}
  - {prefix: --mode, valueFrom: fast, position: 2}
inputs:
  name: {type: string, inputBinding: {position: 1, prefix: --name}}
  count: {type: int, default: 3, inputBinding: {position: 2, prefix: -n, separate: false}}
  verbose: {type: boolean, inputBinding: {prefix: -v}}
  quiet: {type: boolean, default: false, inputBinding: {prefix: -q}}
  tags: {type: "string[]", inputBinding: {itemSeparator: ",", prefix: --tags}}
  extra: {type: "string?", inputBinding: {position: 9}}
  unbound: string?
  data: {type: File, inputBinding: {position: 3}}
outputs:
  out: stdout
stdout: args.txt
requirements:
  EnvVarRequirement: {envDef: {TWIN_TEST_VAR: hello}}
  ResourceRequirement: {coresMin: 1, ramMin: 64}
"""


def test_command_lines_match_cwltool(tmp_path: Path) -> None:
    tool = write(tmp_path, "tool.cwl", TOOL)
    data = write(tmp_path, "data.txt", "x\n")
    job = {
        "name": "probe",
        "verbose": True,
        "tags": ["a", "b"],
        "data": {"class": "File", "location": str(data)},
    }
    n_out, c_out, n_cmd, c_cmd = both(tmp_path, tool, job)

    def names(args: list[str]) -> list[str]:  # cwltool stages the file, native uses it in place
        return [Path(a).name if a.startswith("/") else a for a in args]

    assert names(n_cmd[0]) == names(c_cmd[0])
    printed = Path(n_out["out"]["path"]).read_text().split("|")
    assert names(printed) == names(Path(c_out["out"]["path"]).read_text().split("|"))
    order = ["first", "--tags", "a,b", "-v", "--name", "probe", "--mode", "fast", "-n3"]
    assert printed[:9] == order
    assert Path(printed[9]).name == "data.txt" and printed[10:] == ["late", ""]


WORKFLOW = """cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  words: string[]
  seed: {type: File}
  suffix: {type: string, default: "!"}
outputs:
  shouted:
    type: File[]
    outputSource: shout/out
  joined:
    type: File
    outputSource: join/out
steps:
  shout:
    run: shout.cwl
    scatter: [word, mark]
    scatterMethod: dotproduct
    in: {word: words, mark: words, suffix: suffix}
    out: [out]
  join:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, "cat $0 $1"]  # $1 holds the files joined by spaces
      inputs:
        first: {type: File, inputBinding: {position: 1}}
        rest: {type: "File[]", inputBinding: {position: 2, itemSeparator: " "}}
      outputs:
        out: {type: File, outputBinding: {glob: "*.txt"}}
      stdout: joined.txt
    in:
      first: seed
      rest: shout/out
    out: [out]
"""

SHOUT = """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  word: {type: string, inputBinding: {position: 1}}
  mark: {type: string, inputBinding: {position: 2}}
  suffix: {type: string, inputBinding: {position: 3}}
outputs:
  out: stdout
"""


def test_workflow_with_scatter_and_inline_tool_matches_cwltool(tmp_path: Path) -> None:
    write(tmp_path, "shout.cwl", SHOUT)
    wf = write(tmp_path, "wf.cwl", WORKFLOW)
    seed = write(tmp_path, "seed.txt", "seed\n")
    job = {"words": ["alpha", "beta", "gamma"], "seed": {"class": "File", "path": str(seed)}}
    n_out, c_out, _, _ = both(tmp_path, wf, job)
    assert portable(n_out) == portable(c_out)
    assert Path(n_out["joined"]["path"]).read_text() == (
        "seed\nalpha alpha !\nbeta beta !\ngamma gamma !\n"
    )
    # scatter outputs with one name each land in the output folder as name, name_2, …
    paths = [Path(f["path"]).name for f in n_out["shouted"]]
    base = n_out["shouted"][0]["basename"]
    assert paths == [base, f"{base}_2", f"{base}_3"]


def test_empty_scatter_and_cwl_output_json(tmp_path: Path) -> None:
    write(tmp_path, "shout.cwl", SHOUT)
    wf = write(tmp_path, "wf.cwl", WORKFLOW)
    seed = write(tmp_path, "seed.txt", "seed\n")
    n_out, c_out, _, _ = both(
        tmp_path, wf, {"words": [], "seed": {"class": "File", "location": "seed.txt"}}
    )
    assert n_out["shouted"] == c_out["shouted"] == []
    assert seed.exists()

    custom = write(
        tmp_path,
        "custom.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
baseCommand:
  - sh
  - -c
  - |
    echo data > made.txt
    echo '{"report": {"class": "File", "location": "made.txt"}}' > cwl.output.json
inputs: []
outputs:
  report: File
""",
    )
    n_out, c_out, _, _ = both(tmp_path / "x", custom, None)
    assert portable(n_out) == portable(c_out)


def test_tool_failure_codes_and_stderr_tail(tmp_path: Path, capsys) -> None:
    tool = write(
        tmp_path,
        "codes.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo "disk on fire" >&2; exit 7']
inputs: []
outputs: []
successCodes: [7]
""",
    )
    code, out, opts = run([f"--outdir={tmp_path / 'o'}", str(tool)])
    assert code == 0 and out == {} and opts.loader == "native"
    failing = write(tmp_path, "fail.cwl", tool.read_text().replace("successCodes: [7]\n", ""))
    code, out, opts = run([f"--outdir={tmp_path / 'o2'}", str(failing)])
    assert code == 1 and opts.loader == "native"
    store = RunStore()
    assert store.get(opts.run_id)["state"] == "failed"
    (step,) = store.steps(opts.run_id)
    assert step["exit_code"] == 7 and step["message"] == "exited with status 7"
    assert "disk on fire" in store.logs(opts.run_id, step["name"])
    assert "disk on fire" in capsys.readouterr().err  # the failure shows the stderr tail


def test_quiet_steps_leave_no_empty_log_files(tmp_path: Path) -> None:
    tool = write(
        tmp_path,
        "talk.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
baseCommand: [sh, -c, 'echo to-the-log >&2']
inputs: []
outputs: []
""",
    )
    quiet = write(tmp_path, "quiet.cwl", tool.read_text().replace("echo to-the-log >&2", "true"))
    store = RunStore()
    for doc, expected in ((tool, "to-the-log\n"), (quiet, None)):
        code, _, opts = run([f"--outdir={tmp_path / doc.stem}", str(doc)])
        assert code == 0
        (step,) = store.steps(opts.run_id)
        log = Path(step["stderr_uri"])
        assert (log.read_text() if log.exists() else None) == expected


def test_resume_reuses_succeeded_steps(tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    wf = write(
        tmp_path,
        "resume.cwl",
        f"""cwlVersion: v1.2
class: Workflow
inputs: []
outputs:
  out: {{type: File, outputSource: second/out}}
steps:
  first:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, 'date +%s%N > stamp.txt']
      inputs: []
      outputs:
        stamp: {{type: File, outputBinding: {{glob: stamp.txt}}}}
    in: {{}}
    out: [stamp]
  second:
    run:
      class: CommandLineTool
      baseCommand: [sh, -c, 'test -e {flag} && cat "$0"']
      inputs:
        stamp: {{type: File, inputBinding: {{position: 1}}}}
      outputs:
        out: stdout
    in: {{stamp: first/stamp}}
    out: [out]
""",
    )
    code, _, opts = run([f"--outdir={tmp_path / 'o'}", str(wf)])
    assert code == 1 and opts.loader == "native"
    store = RunStore()
    first = next(s for s in store.steps(opts.run_id) if s["name"].endswith("/first"))
    first_stamp = Path(first["outputs"]["stamp"]["path"]).read_text()
    flag.write_text("go")
    argv, _cwd, resume = RunOptions.for_resume(store.check_resumable(opts.run_id))
    out = io.StringIO()
    assert run_cwl(argv, resume, stdout=out) == 0
    assert resume.loader == "native"
    result = json.loads(out.getvalue())
    stamp = Path(result["out"]["path"]).read_text()
    assert stamp == first_stamp  # the first step was not run again
    steps = store.steps(opts.run_id)
    reused = [s for s in steps if s["reused_from"]]
    assert [s["reused_from"] for s in reused] == [first["id"]]
    assert store.get(opts.run_id)["state"] == "succeeded"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("baseCommand: [echo, $(inputs.x)]\ninputs: {x: string}\noutputs: []", "expression"),
        ("$namespaces: {x: 'http://x'}\nbaseCommand: echo\ninputs: []\noutputs: []", "directive"),
        ("baseCommand: echo\ninputs: {d: Directory}\noutputs: []", "type"),
        ("baseCommand: echo\ninputs: {x: {type: float, inputBinding: {}}}\noutputs: []", "float"),
        (
            "baseCommand: echo\ninputs: []\noutputs: []\n"
            "requirements: {DockerRequirement: {dockerPull: alpine}}",
            "Docker",
        ),
        ("baseCommand: echo\nbaseCommand: cat\ninputs: []\noutputs: []", "duplicate"),
        (
            "baseCommand: echo\ninputs: {x: {type: 'string[]', inputBinding: {}}}\noutputs: []",
            "array",
        ),
        ("baseCommand: echo\ninputs: []\noutputs: []\nstdin: in.txt", "stdin"),
    ],
)
def test_documents_outside_the_subset_go_to_cwltool(tmp_path: Path, text: str, reason: str) -> None:
    doc = write(tmp_path, "tool.cwl", "cwlVersion: v1.2\nclass: CommandLineTool\n" + text + "\n")
    with pytest.raises(NotNative, match=reason):
        load_native(doc)


def test_yaml_is_read_with_yaml_1_2_rules(tmp_path: Path) -> None:
    doc = write(
        tmp_path,
        "tool.cwl",
        """cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  answer: {type: string, default: yes, inputBinding: {position: 1}}
  when: {type: string, default: 2026-11-25, inputBinding: {position: 2}}
  number: {type: int, default: 010, inputBinding: {position: 3}}
outputs:
  out: stdout
""",
    )
    job = read_job(load_native(doc), None)
    assert job == {"answer": "yes", "when": "2026-11-25", "number": 10}
    code, out, opts = run([f"--outdir={tmp_path / 'o'}", str(doc)])
    assert code == 0 and opts.loader == "native"
    assert Path(out["out"]["path"]).read_text() == "yes 2026-11-25 10\n"


def test_invalid_input_objects_are_reported_by_cwltool(tmp_path: Path) -> None:
    doc = write(tmp_path, "tool.cwl", SHOUT)
    job = write_job(tmp_path / "job.json", {"word": "a", "mark": 3, "suffix": "!"})
    with pytest.raises(NotNative, match="does not match"):
        read_job(load_native(doc), str(job))
    code, _, opts = run([str(doc), str(job)])
    assert code != 0 and opts.loader == "cwltool"


def test_a_docker_hint_is_ignored_only_without_a_container_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = write(
        tmp_path,
        "hinted.cwl",
        "cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: [echo, hi]\ninputs: []\n"
        "outputs: {out: stdout}\nhints: {DockerRequirement: {dockerPull: 'debian:stable'}}\n",
    )
    import twinengine.workflows.containers as containers

    monkeypatch.setattr(containers, "working_container_engine", lambda: None)
    code, out, opts = run([f"--outdir={tmp_path / 'a'}", str(doc)])
    assert code == 0 and opts.loader == "native"
    assert Path(out["out"]["path"]).read_text() == "hi\n"
    monkeypatch.setattr(containers, "working_container_engine", lambda: "docker")
    from twinengine.workflows.native import try_native

    declined = try_native(["--quiet", str(doc)], RunOptions())
    assert declined is None  # with an engine, cwltool runs it in the container
    accepted = try_native(
        ["--quiet", "--no-container", f"--outdir={tmp_path / 'b'}", str(doc)],
        RunOptions(),
        io.StringIO(),
    )
    assert accepted == 0
