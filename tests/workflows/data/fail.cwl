cwlVersion: v1.2
class: CommandLineTool
requirements:
  ShellCommandRequirement: {}
inputs:
  message: {type: string, default: "the sensor is offline"}
arguments:
  - shellQuote: false
    valueFrom: echo "$(inputs.message)" >&2; exit 3
outputs: []
