cwlVersion: v1.2
class: CommandLineTool
label: hyper-parameter search
doc: |
  Searches the space in the config's `search` section (Optuna, or Ray Tune with
  search.backend=ray), each trial an MLflow child run: `twin tune CONFIG [KEY=VALUE…] --json`.
  With `register` set, the best trial's model is registered under that name.
requirements:
  InlineJavascriptRequirement: {}
  NetworkAccess: {networkAccess: true}
  ResourceRequirement: {coresMin: 1}
baseCommand: [twin, tune]
arguments:
  - --json
  - {prefix: --output, valueFrom: best_config.yaml}
  - {position: 2, valueFrom: "tracking.uri=$(inputs.tracking_uri)"}
  - position: 3
    valueFrom: '${ return inputs.data ? "data.path=" + inputs.data.path : null; }'
  - position: 4
    valueFrom: '${ return inputs.register ? "search.register=" + inputs.register : null; }'
inputs:
  config: {type: File, inputBinding: {position: 1}, doc: training config with a search section}
  data: {type: "File?", doc: the data file (else the config's data.path)}
  overrides: {type: "string[]?", inputBinding: {position: 5}, doc: KEY=VALUE overrides}
  register: {type: "string?", doc: register the best model under this name}
  tracking_uri: {type: string}
stdout: tuned.json
outputs:
  best_run_id:
    type: string
    outputBinding: {glob: tuned.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).best_run_id)"}
  best_value:
    type: float
    outputBinding: {glob: tuned.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).best_value)"}
  best_params:
    type: Any
    outputBinding: {glob: tuned.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).best_params)"}
  registered_version:
    type: "int?"
    outputBinding: {glob: tuned.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).registered)"}
  best_config:
    type: File
    outputBinding: {glob: best_config.yaml}
