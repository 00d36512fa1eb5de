cwlVersion: v1.2
class: CommandLineTool
$namespaces:
  twin: "https://twinengine.org/cwl#"
hints:
  twin:Retry: {maxAttempts: 3, backoff: 0.1, backoffFactor: 1}
requirements:
  ShellCommandRequirement: {}
inputs:
  counter: string
  fail_times: int
arguments:
  - shellQuote: false
    valueFrom: >
      n=`cat $(inputs.counter) 2>/dev/null || echo 0`; n=`expr $n + 1`; echo $n > $(inputs.counter);
      if [ $n -le $(inputs.fail_times) ]; then echo "attempt $n failed" >&2; exit 1; fi; echo ok
outputs:
  out: stdout
