cwlVersion: v1.2
class: CommandLineTool
label: train a model from a config
doc: |
  Trains the model a YAML config describes, tracked in MLflow:
  `twin train CONFIG [KEY=VALUE…] --json --export-model model`. The data file is an
  input of its own (staged beside nothing, so it replaces the config's data.path);
  the trained files (model.onnx, model.pt, standardize.json) are outputs.
requirements:
  InlineJavascriptRequirement: {}
  NetworkAccess: {networkAccess: true}
baseCommand: [twin, train]
arguments:
  - --json
  - {prefix: --export-model, valueFrom: model}
  - {position: 2, valueFrom: "tracking.uri=$(inputs.tracking_uri)"}
  - position: 3
    valueFrom: '${ return inputs.data ? "data.path=" + inputs.data.path : null; }'
inputs:
  config: {type: File, inputBinding: {position: 1}, doc: the training config (YAML)}
  data: {type: "File?", doc: the data file (else the config's data.path)}
  overrides: {type: "string[]?", inputBinding: {position: 4}, doc: KEY=VALUE overrides}
  nproc: {type: "int?", inputBinding: {prefix: --nproc}, doc: DDP processes}
  tracking_uri: {type: string}
stdout: trained.json
outputs:
  run_id:
    type: string
    outputBinding: {glob: trained.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).run_id)"}
  epochs:
    type: int
    outputBinding: {glob: trained.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).epochs)"}
  val_loss:
    type: float
    doc: the last epoch's validation loss (the training loss without a validation part)
    outputBinding: {glob: trained.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).loss)"}
  metrics:
    type: Any
    outputBinding: {glob: trained.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).metrics)"}
  model:
    type: File
    outputBinding: {glob: model/model.onnx}
  model_dir:
    type: Directory
    outputBinding: {glob: model}
