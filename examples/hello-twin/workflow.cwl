#!/usr/bin/env cwl-runner
cwlVersion: v1.2
class: Workflow
label: hello-twin
doc: |
  The TwinEngine demo: a small sensor-data pipeline.
  generate -> clean -> aggregate -> plot.
  A synthetic river-gauge water-level series (slow flood wave + daily cycle + noise +
  injected spikes) is generated, outliers are removed with a rolling median / MAD
  test, the cleaned series is aggregated into fixed periods (mean, min, max), and
  everything is plotted to a PNG. Each step is a CommandLineTool running a Python
  script from ./steps (resolved relative to this file, so the workflow runs from any
  working directory). The scripts of the first three steps use only the Python
  standard library; the plot step needs matplotlib (`pip install twinengine[demo]`).

inputs:
  samples:
    type: int
    default: 4320
    doc: Number of samples to generate (4320 x 10 min = 30 days).
  seed:
    type: int
    default: 42
    doc: Random seed of the generator (same seed, same series).
  spikes:
    type: int
    default: 8
    doc: Number of spikes (sensor glitches) to inject.
  interval_minutes:
    type: int
    default: 10
    doc: Sampling interval in minutes.
  window:
    type: int
    default: 25
    doc: Rolling-median window of the cleaning step, in samples.
  threshold:
    type: float
    default: 5.0
    doc: Robust z-score (|x - median| / (1.4826 MAD)) above which a point is removed.
  period_minutes:
    type: int
    default: 1440
    doc: Aggregation period in minutes (60 = hourly, 1440 = daily).
  title:
    type: string
    default: "hello-twin: river gauge water level"
    doc: Title of the plot.

outputs:
  raw:
    type: File
    outputSource: generate/series
    doc: The generated series, CSV with columns timestamp,value.
  cleaned:
    type: File
    outputSource: clean/cleaned
    doc: The series without outliers, CSV with columns timestamp,value.
  clean_report:
    type: File
    outputSource: clean/report
    doc: JSON report of the cleaning step (counts, parameters, removed points).
  outliers_removed:
    type: int
    outputSource: clean/removed
    doc: How many points the cleaning step removed.
  aggregated:
    type: File
    outputSource: aggregate/aggregated
    doc: CSV with columns period_start,mean,min,max,count.
  plot_png:
    type: File
    outputSource: plot/png
    doc: PNG of the raw, cleaned and aggregated series.

steps:
  generate:
    in:
      samples: samples
      seed: seed
      spikes: spikes
      interval_minutes: interval_minutes
    out: [series]
    run:
      class: CommandLineTool
      label: generate
      doc: Synthesise a sensor time series with injected spikes.
      hints:
        ResourceRequirement:
          coresMin: 1
          ramMin: 256
      baseCommand: python3
      inputs:
        script:
          type: File
          default: {class: File, location: steps/generate.py}
          inputBinding: {position: 0}
        samples:
          type: int
          inputBinding: {position: 1, prefix: --samples}
        seed:
          type: int
          inputBinding: {position: 2, prefix: --seed}
        spikes:
          type: int
          inputBinding: {position: 3, prefix: --spikes}
        interval_minutes:
          type: int
          inputBinding: {position: 4, prefix: --interval-minutes}
      arguments:
        - {position: 5, prefix: --output, valueFrom: raw.csv}
      stdout: generate.log
      outputs:
        series:
          type: File
          format: iana:text/csv
          outputBinding: {glob: raw.csv}

  clean:
    in:
      series: generate/series
      window: window
      threshold: threshold
    out: [cleaned, report, removed]
    run:
      class: CommandLineTool
      label: clean
      doc: |
        Remove outliers with a rolling median and the median absolute deviation.
        The script writes cwl.output.json, which supplies this tool's outputs
        (the removed-point count as a plain int, no JavaScript needed).
      hints:
        ResourceRequirement:
          coresMin: 1
          ramMin: 256
      baseCommand: python3
      inputs:
        script:
          type: File
          default: {class: File, location: steps/clean.py}
          inputBinding: {position: 0}
        series:
          type: File
          inputBinding: {position: 1}
        window:
          type: int
          inputBinding: {position: 2, prefix: --window}
        threshold:
          type: float
          inputBinding: {position: 3, prefix: --threshold}
      arguments:
        - {position: 4, prefix: --output, valueFrom: cleaned.csv}
        - {position: 5, prefix: --report, valueFrom: clean_report.json}
      stdout: clean.log
      outputs:
        cleaned:
          type: File
          format: iana:text/csv
          outputBinding: {glob: cleaned.csv}
        report:
          type: File
          format: iana:application/json
          outputBinding: {glob: clean_report.json}
        removed:
          type: int

  aggregate:
    in:
      series: clean/cleaned
      period_minutes: period_minutes
    out: [aggregated]
    run:
      class: CommandLineTool
      label: aggregate
      doc: Aggregate the cleaned series into fixed periods (mean, min, max, count).
      hints:
        ResourceRequirement:
          coresMin: 1
          ramMin: 256
      baseCommand: python3
      inputs:
        script:
          type: File
          default: {class: File, location: steps/aggregate.py}
          inputBinding: {position: 0}
        series:
          type: File
          inputBinding: {position: 1}
        period_minutes:
          type: int
          inputBinding: {position: 2, prefix: --period-minutes}
      arguments:
        - {position: 3, prefix: --output, valueFrom: aggregated.csv}
      stdout: aggregate.log
      outputs:
        aggregated:
          type: File
          format: iana:text/csv
          outputBinding: {glob: aggregated.csv}

  plot:
    in:
      raw: generate/series
      cleaned: clean/cleaned
      aggregated: aggregate/aggregated
      title: title
    out: [png]
    run:
      class: CommandLineTool
      label: plot
      doc: Plot raw vs cleaned vs aggregated series to a PNG (matplotlib, Agg backend).
      requirements:
        EnvVarRequirement:
          envDef:
            MPLBACKEND: Agg
            MPLCONFIGDIR: $(runtime.tmpdir)
      hints:
        ResourceRequirement:
          coresMin: 1
          ramMin: 256
      baseCommand: python3
      inputs:
        script:
          type: File
          default: {class: File, location: steps/plot.py}
          inputBinding: {position: 0}
        raw:
          type: File
          inputBinding: {position: 1}
        cleaned:
          type: File
          inputBinding: {position: 2}
        aggregated:
          type: File
          inputBinding: {position: 3}
        title:
          type: string
          inputBinding: {position: 4, prefix: --title}
      arguments:
        - {position: 5, prefix: --output, valueFrom: hello-twin.png}
      stdout: plot.log
      outputs:
        png:
          type: File
          format: iana:image/png
          outputBinding: {glob: hello-twin.png}

$namespaces:
  iana: https://www.iana.org/assignments/media-types/
