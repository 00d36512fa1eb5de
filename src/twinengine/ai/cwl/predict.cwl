cwlVersion: v1.2
class: CommandLineTool
label: batch inference
doc: |
  Runs a registered model (NAME@ALIAS, NAME/VERSION or NAME) over every row of a file
  (CSV, NPY, NPZ, NetCDF or HDF5) and writes the predictions (.csv, .npy or .npz):
  `twin models predict MODEL INPUT OUTPUT`. Feature columns default to those the model
  was trained on.
requirements:
  InlineJavascriptRequirement: {}
  NetworkAccess: {networkAccess: true}
baseCommand: [twin, models, predict]
inputs:
  model: {type: string, inputBinding: {position: 1}}
  rows: {type: File, inputBinding: {position: 2}}
  output_name: {type: string, default: predictions.csv, inputBinding: {position: 3}}
  features:
    type: string[]?
    inputBinding: {prefix: --features, itemSeparator: ","}
  batch_size: {type: "int?", inputBinding: {prefix: --batch-size}}
  tracking_uri: {type: string, inputBinding: {prefix: --tracking-uri}}
stdout: summary.json
outputs:
  predictions:
    type: File
    outputBinding: {glob: $(inputs.output_name)}
  version:
    type: "int?"
    outputBinding: {glob: summary.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).version)"}
