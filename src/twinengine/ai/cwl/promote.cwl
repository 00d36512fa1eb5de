cwlVersion: v1.2
class: CommandLineTool
label: promote (deploy) a model version
doc: |
  Points an alias (production or staging) at a registered version:
  `twin models promote NAME VERSION --alias ALIAS --json`. This is the deploy step of a
  workflow: every `twin models serve NAME@ALIAS` deployment swaps to the new version
  within seconds, without dropping a request. With require_quality the promotion is
  refused unless the version's tag twin.quality is `passed`.
requirements:
  InlineJavascriptRequirement: {}
  NetworkAccess: {networkAccess: true}
baseCommand: [twin, models, promote]
arguments: [--json]
inputs:
  name: {type: string, inputBinding: {position: 1}}
  version: {type: int, inputBinding: {position: 2}}
  alias: {type: string, default: production, inputBinding: {prefix: --alias}}
  require_quality: {type: boolean, default: false, inputBinding: {prefix: --require-quality}}
  tracking_uri: {type: string, inputBinding: {prefix: --tracking-uri}}
stdout: promoted.json
outputs:
  model:
    type: string
    doc: the reference NAME@ALIAS that now designates the version
    outputBinding:
      glob: promoted.json
      loadContents: true
      outputEval: $(JSON.parse(self[0].contents).name + "@" + JSON.parse(self[0].contents).alias)
  previous:
    type: "int?"
    outputBinding: {glob: promoted.json, loadContents: true, outputEval: "$(JSON.parse(self[0].contents).from)"}
