cwlVersion: v1.2
class: CommandLineTool
requirements:
  ShellCommandRequirement: {}
inputs:
  counter: string
arguments:
  - shellQuote: false
    valueFrom: >
      n=`cat $(inputs.counter) 2>/dev/null || echo 0`; n=`expr $n + 1`; echo $n > $(inputs.counter);
      echo "first step ran $n time(s)"
outputs:
  out: stdout
stdout: first.txt
