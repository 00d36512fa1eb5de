cwlVersion: v1.2
class: CommandLineTool
baseCommand: echo
inputs:
  item: {type: strnig, inputBinding: {position: 1}}
outputs:
  out: stdout
