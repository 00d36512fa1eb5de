cwlVersion: v1.2
class: CommandLineTool
label: count lines, words and bytes
doc: wc of a file.
baseCommand: wc
inputs:
  file:
    type: File
    inputBinding: {position: 1}
stdout: counts.txt
outputs:
  output:
    type: stdout
