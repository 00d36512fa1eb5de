cwlVersion: v1.2
class: CommandLineTool
label: concatenate files
doc: Joins the files, in order, into one.
baseCommand: cat
inputs:
  files:
    type: File[]
    inputBinding: {position: 1}
stdout: joined.txt
outputs:
  output:
    type: stdout
