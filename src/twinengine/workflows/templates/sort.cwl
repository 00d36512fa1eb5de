cwlVersion: v1.2
class: CommandLineTool
label: sort lines
doc: Sorts the lines of a file.
baseCommand: sort
inputs:
  file:
    type: File
    inputBinding: {position: 1}
stdout: sorted.txt
outputs:
  output:
    type: stdout
