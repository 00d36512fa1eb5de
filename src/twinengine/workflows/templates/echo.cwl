cwlVersion: v1.2
class: CommandLineTool
label: echo a message
doc: Writes the message to a text file.
baseCommand: echo
inputs:
  message:
    type: string
    inputBinding: {position: 1}
stdout: output.txt
outputs:
  output:
    type: stdout
