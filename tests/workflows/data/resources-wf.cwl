cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
  StepInputExpressionRequirement: {}
  InlineJavascriptRequirement: {}
inputs:
  names: string[]
  log_dir: string
  seconds: float
outputs: []
steps:
  small:
    run: sleep-stamp.cwl
    scatter: name
    in: {name: names, log_dir: log_dir, seconds: seconds}
    out: []
  big:
    run: sleep-stamp.cwl
    in:
      name: {valueFrom: big}
      log_dir: log_dir
      seconds: seconds
      cores: {valueFrom: $(2)}
    out: []
