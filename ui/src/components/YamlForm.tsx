// A YAML definition posted as text (sources, triggers): the server checks it and its
// refusal — which names the field — is shown verbatim under the text.

import { useState, type FormEvent } from "react";
import { errorText } from "../api";

export function YamlForm(props: {
  title: string;
  example: string;
  testId: string;
  submitLabel: string;
  onSubmit: (yaml: string, replace: boolean) => Promise<unknown>;
  open?: boolean;
}) {
  const [text, setText] = useState(props.example);
  const [replace, setReplace] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<{ message: string; hint: string | null } | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const id = props.testId;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setProblem(null);
    setDone(null);
    try {
      await props.onSubmit(text, replace);
      setDone("saved");
    } catch (err) {
      setProblem(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="card" open={props.open} data-testid={`${id}-panel`}>
      <summary data-testid={`${id}-toggle`}>{props.title}</summary>
      <form className="yaml-form" onSubmit={submit} data-testid={`${id}-form`}>
        <textarea
          value={text}
          onChange={(e) => setText(e.target.value)}
          rows={Math.min(18, Math.max(8, props.example.split("\n").length + 1))}
          spellCheck={false}
          data-testid={`${id}-yaml`}
        />
        {problem && (
          <div className="form-problem" data-testid={`${id}-error`} role="alert">
            <div className="pre-line">{problem.message}</div>
            {problem.hint && <div className="small">Hint: {problem.hint}</div>}
          </div>
        )}
        <div className="inline">
          <button type="submit" disabled={busy || !text.trim()} data-testid={`${id}-submit`}>
            {busy ? "Saving…" : props.submitLabel}
          </button>
          <label className="check small">
            <input
              type="checkbox"
              checked={replace}
              onChange={(e) => setReplace(e.target.checked)}
              data-testid={`${id}-replace`}
            />
            replace one of the same name
          </label>
          <button type="button" className="link small" onClick={() => setText(props.example)}>
            reset to the example
          </button>
          {done && (
            <span className="ok small" data-testid={`${id}-done`}>
              ✓ {done}
            </span>
          )}
        </div>
      </form>
    </details>
  );
}
