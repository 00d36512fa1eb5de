cwlVersion: v1.2
class: Workflow
inputs:
  counter: string
  seconds: float
outputs:
  first: {type: File, outputSource: first/out}
  second: {type: File, outputSource: second/out}
steps:
  first:
    run: count.cwl
    in: {counter: counter}
    out: [out]
  second:
    run: slow-cat.cwl
    in: {infile: first/out, seconds: seconds}
    out: [out]
