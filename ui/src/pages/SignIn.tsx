// Sign in with an API token; GET /api/v1/me checks it before it is stored.

import { useState, type FormEvent } from "react";
import { useErrors } from "../errors";

export function SignIn({ onSignIn }: { onSignIn: (token: string) => Promise<void> }) {
  const { report } = useErrors();
  const [token, setToken] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    try {
      await onSignIn(token.trim());
    } catch (err) {
      report(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="card signin" onSubmit={submit} data-testid="signin-form">
      <h1>Sign in</h1>
      <p className="muted">
        Paste an API token (<code>twin_…</code>). <code>twin serve</code> prints the admin token on its first
        start; <code>twin tokens create</code> makes more.
      </p>
      <label>
        API token
        <input
          type="password"
          autoComplete="off"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          placeholder="twin_…"
          data-testid="token-input"
          required
        />
      </label>
      <button type="submit" disabled={busy || !token.trim()} data-testid="signin-submit">
        {busy ? "Checking…" : "Sign in"}
      </button>
    </form>
  );
}
