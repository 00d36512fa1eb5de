cwlVersion: v1.2
class: CommandLineTool
requirements:
  ShellCommandRequirement: {}
  ResourceRequirement: {coresMin: $(inputs.cores)}
  InlineJavascriptRequirement: {}
inputs:
  name: string
  seconds: float
  cores: {type: int, default: 1}
  log_dir: string
arguments:
  - shellQuote: false
    valueFrom: >
      date +%s.%N > $(inputs.log_dir)/$(inputs.name).start; sleep $(inputs.seconds);
      date +%s.%N > $(inputs.log_dir)/$(inputs.name).end
outputs: []
