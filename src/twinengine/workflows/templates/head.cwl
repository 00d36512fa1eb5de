cwlVersion: v1.2
class: CommandLineTool
label: first lines of a file
doc: The first N lines of a file.
baseCommand: head
inputs:
  lines:
    type: int
    default: 10
    inputBinding: {position: 1, prefix: -n}
  file:
    type: File
    inputBinding: {position: 2}
stdout: head.txt
outputs:
  output:
    type: stdout
