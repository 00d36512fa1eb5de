cwlVersion: v1.2
class: CommandLineTool
requirements:
  DockerRequirement: {dockerPull: "debian:stable-slim"}
baseCommand: echo
inputs: []
arguments: [hello]
outputs: []
