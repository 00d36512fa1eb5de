// The application shell: sign-in gate, navigation bar, error banner and page routing.

import { useCallback, useEffect, useState, type ReactElement } from "react";
import { api, getToken, setToken, setUnauthorizedHandler, type Me } from "./api";
import { SessionContext } from "./auth";
import { ErrorBanner, useErrors } from "./errors";
import { href, navigate, useRoute } from "./router";
import { SignIn } from "./pages/SignIn";
import { Workflows } from "./pages/Workflows";
import { WorkflowDetail } from "./pages/WorkflowDetail";
import { Composer } from "./pages/Composer";
import { Runs } from "./pages/Runs";
import { RunDetail } from "./pages/RunDetail";

export function App() {
  const { report, clear } = useErrors();
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState<boolean>(() => Boolean(getToken()));

  const signOut = useCallback(() => {
    setToken(null);
    setMe(null);
    navigate("/");
  }, []);

  useEffect(() => {
    setUnauthorizedHandler(() => {
      setToken(null);
      setMe(null);
    });
    return () => setUnauthorizedHandler(null);
  }, []);

  useEffect(() => {
    const token = getToken();
    if (!token) return;
    api
      .me(token)
      .then(setMe)
      .catch((err) => {
        setToken(null);
        report(err);
      })
      .finally(() => setChecking(false));
  }, [report]);

  const signIn = useCallback(
    async (token: string) => {
      const who = await api.me(token);
      setToken(token);
      clear();
      setMe(who);
      if (!window.location.hash || window.location.hash === "#/") navigate("/workflows");
    },
    [clear],
  );

  const section = route.path[0] ?? "workflows";
  let page: ReactElement;
  if (!me) {
    page = checking ? <p className="muted">Checking the token…</p> : <SignIn onSignIn={signIn} />;
  } else if (section === "workflows" && route.path[1]) {
    page = <WorkflowDetail id={route.path[1]} tab={route.query.get("tab") ?? "graph"} />;
  } else if (section === "composer") {
    page = <Composer />;
  } else if (section === "runs" && route.path[1]) {
    page = <RunDetail id={route.path[1]} tab={route.query.get("tab") ?? "overview"} />;
  } else if (section === "runs") {
    page = <Runs />;
  } else {
    page = <Workflows />;
  }

  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href={href("workflows")}>
          TwinEngine
        </a>
        {me && (
          <nav className="nav" data-testid="nav">
            <a href={href("workflows")} className={section === "workflows" ? "active" : ""} data-testid="nav-workflows">
              Workflows
            </a>
            <a href={href("composer")} className={section === "composer" ? "active" : ""} data-testid="nav-composer">
              Composer
            </a>
            <a href={href("runs")} className={section === "runs" ? "active" : ""} data-testid="nav-runs">
              Runs
            </a>
          </nav>
        )}
        <div className="spacer" />
        {me && (
          <div className="who">
            <span data-testid="current-user" title={`token ${me.token.id}: ${me.token.scopes.join(", ")}`}>
              {me.user.name}
              {me.user.admin ? " (admin)" : ""}
            </span>
            <button className="secondary" onClick={signOut} data-testid="sign-out">
              Sign out
            </button>
          </div>
        )}
      </header>
      <ErrorBanner />
      <main className="content">
        {me ? <SessionContext.Provider value={{ me, signOut }}>{page}</SessionContext.Provider> : page}
      </main>
    </div>
  );
}
