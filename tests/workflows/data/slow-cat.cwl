cwlVersion: v1.2
class: CommandLineTool
requirements:
  ShellCommandRequirement: {}
inputs:
  infile: File
  seconds: float
arguments:
  - shellQuote: false
    valueFrom: sleep $(inputs.seconds); cat $(inputs.infile.path)
outputs:
  out: stdout
stdout: second.txt
