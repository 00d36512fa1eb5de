cwlVersion: v1.2
class: CommandLineTool
label: run a Python script
doc: Runs a Python script (its text) with an optional input file as its first argument.
baseCommand: python3
requirements:
  InitialWorkDirRequirement:
    listing:
      - entryname: script.py
        entry: $(inputs.script)
  InlineJavascriptRequirement: {}
arguments:
  - script.py
inputs:
  script:
    type: string
  file:
    type: File?
    inputBinding: {position: 1}
stdout: output.txt
outputs:
  output:
    type: stdout
