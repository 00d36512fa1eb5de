cwlVersion: v1.2
class: CommandLineTool
label: serve a model over HTTP
doc: |
  Serves a registered model (NAME@ALIAS is followed and swapped hot when the alias
  moves) with `twin models serve`: POST /predict, GET /metadata, /health, /metrics.
  A long-running service step: it serves for `duration` seconds (0: until the run is
  cancelled). To deploy a new version from a workflow, use promote.cwl: running
  deployments of NAME@production follow it.
requirements:
  NetworkAccess: {networkAccess: true}
baseCommand: [twin, models, serve]
inputs:
  model: {type: string, inputBinding: {position: 1}}
  host: {type: string, default: 127.0.0.1, inputBinding: {prefix: --host}}
  port: {type: int, default: 8080, inputBinding: {prefix: --port}}
  replicas: {type: int, default: 1, inputBinding: {prefix: --replicas}}
  duration: {type: float, default: 0, inputBinding: {prefix: --duration}}
  thresholds:
    type:
      - "null"
      - type: array
        items: string
        inputBinding: {prefix: --threshold}
  alert_webhooks:
    type:
      - "null"
      - type: array
        items: string
        inputBinding: {prefix: --alert-webhook}
  tracking_uri: {type: string, inputBinding: {prefix: --tracking-uri}}
stdout: serve.log
stderr: serve.err
outputs:
  log: {type: stdout}
