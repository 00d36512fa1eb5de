// A Gantt-like timeline: one bar per step from its start to its end (or now).

import type { Step } from "../api";
import { seconds } from "../format";

export function Timeline({ steps, runStart, runEnd }: { steps: Step[]; runStart?: string | null; runEnd?: string | null }) {
  const timed = steps
    .filter((s) => s.started_at)
    .map((s) => ({
      step: s,
      start: new Date(s.started_at!).getTime(),
      end: s.ended_at ? new Date(s.ended_at).getTime() : Date.now(),
    }))
    .sort((a, b) => a.start - b.start);
  if (timed.length === 0) return <p className="muted">No step has started yet.</p>;
  const t0 = Math.min(runStart ? new Date(runStart).getTime() : Infinity, ...timed.map((t) => t.start));
  const t1 = Math.max(runEnd ? new Date(runEnd).getTime() : 0, ...timed.map((t) => t.end), t0 + 1);
  const span = t1 - t0;
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return (
    <div className="timeline" data-testid="timeline">
      <div className="timeline-axis">
        <span className="timeline-label" />
        <div className="timeline-track">
          {ticks.map((t) => (
            <span key={t} className="tick" style={{ left: `${t * 100}%` }}>
              {seconds((span * t) / 1000)}
            </span>
          ))}
        </div>
      </div>
      {timed.map(({ step, start, end }) => {
        const left = ((start - t0) / span) * 100;
        const width = Math.max(0.5, ((end - start) / span) * 100);
        return (
          <div className="timeline-row" key={step.id} data-testid="timeline-row" data-name={step.name}>
            <span className="timeline-label" title={step.name}>
              {step.name}
            </span>
            <div className="timeline-track">
              <div
                className={`timeline-bar state-${step.state}`}
                style={{ left: `${left}%`, width: `${width}%` }}
                title={`${step.name}: ${step.state}, ${seconds((end - start) / 1000)}`}
              />
            </div>
          </div>
        );
      })}
    </div>
  );
}
