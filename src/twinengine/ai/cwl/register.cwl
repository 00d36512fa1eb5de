cwlVersion: v1.2
class: CommandLineTool
label: register a trained model
doc: |
  Registers the model of a `twin train` run (its ONNX and native files) as a new version
  of NAME in the MLflow model registry: `twin models register RUN_ID NAME --json`.
requirements:
  InlineJavascriptRequirement: {}
  NetworkAccess: {networkAccess: true}
baseCommand: [twin, models, register]
arguments: [--json]
inputs:
  run_id: {type: string, inputBinding: {position: 1}, doc: MLflow run id of a training run}
  name: {type: string, inputBinding: {position: 2}, doc: registered model name}
  description: {type: "string?", inputBinding: {prefix: --description}}
  tracking_uri:
    type: string
    inputBinding: {prefix: --tracking-uri}
    doc: MLflow tracking URI, e.g. sqlite:////home/me/.twinengine/mlflow.db
stdout: registered.json
outputs:
  name:
    type: string
    outputBinding: {glob: registered.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).name)"}
  version:
    type: int
    outputBinding: {glob: registered.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).version)"}
  model:
    type: string
    doc: the reference NAME/VERSION, for predict and serve
    outputBinding:
      glob: registered.json
      loadContents: true
      outputEval: $(JSON.parse(self[0].contents).name + "/" + JSON.parse(self[0].contents).version)
