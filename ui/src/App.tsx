// The application shell: sign-in gate, navigation bar, error banner and page routing.

import { useCallback, useEffect, useState, type ReactElement } from "react";
import { api, getToken, rawRequest, setToken, setUnauthorizedHandler, type Me } from "./api";
import { SessionContext } from "./auth";
import { ErrorBanner, useErrors } from "./errors";
import { href, navigate, useRoute } from "./router";
import { SignIn } from "./pages/SignIn";
import { Workflows } from "./pages/Workflows";
import { WorkflowDetail } from "./pages/WorkflowDetail";
import { Composer } from "./pages/Composer";
import { Runs } from "./pages/Runs";
import { RunDetail } from "./pages/RunDetail";
import { Events, EventDetail } from "./pages/Events";
import { Approvals } from "./pages/Approvals";
import { Triggers, TriggerDetail } from "./pages/Triggers";
import { Sources } from "./pages/Sources";
import { Notifications } from "./pages/Notifications";
import { Functions } from "./pages/Functions";
import { Models } from "./pages/Models";
import { LiveProvider, useLive } from "./live";
import { Bell } from "./components/Bell";

const NAV: [string, string][] = [
  ["workflows", "Workflows"],
  ["composer", "Composer"],
  ["runs", "Runs"],
  ["events", "Events"],
  ["approvals", "Approvals"],
  ["triggers", "Triggers"],
  ["sources", "Sources"],
  ["functions", "Functions"],
  ["models", "Models"],
];

function Nav({ section, mlflow }: { section: string; mlflow: boolean }) {
  const { approvals } = useLive();
  const waiting = approvals?.length ?? 0;
  return (
    <nav className="nav" data-testid="nav">
      {NAV.map(([key, label]) => (
        <a key={key} href={href(key)} className={section === key ? "active" : ""} data-testid={`nav-${key}`}>
          {label}
          {key === "approvals" && waiting > 0 && (
            <span className="count" data-testid="approvals-count" title={`${waiting} waiting for approval`}>
              {waiting}
            </span>
          )}
        </a>
      ))}
      {mlflow && (
      <a
        href="/mlflow/"
        target="_blank"
        rel="noopener"
        data-testid="nav-mlflow"
        title="MLflow: training runs, metrics and registered models (opens a new tab)"
        onClick={openMlflow}
      >
        MLflow ↗
      </a>
      )}
    </nav>
  );
}

// A browser cannot send the bearer header to /mlflow: the server first stores the token in
// an HTTP-only cookie scoped to /mlflow, then the tab opened synchronously goes there.
function openMlflow(event: React.MouseEvent<HTMLAnchorElement>) {
  event.preventDefault();
  const tab = window.open("about:blank", "_blank");
  rawRequest("/api/v1/session", { method: "POST" })
    .then(() => {
      if (tab) tab.location.href = "/mlflow/";
      else window.location.href = "/mlflow/";
    })
    .catch(() => tab?.close());
}

export function App() {
  const { report, clear } = useErrors();
  const route = useRoute();
  const [me, setMe] = useState<Me | null>(null);
  const [checking, setChecking] = useState<boolean>(() => Boolean(getToken()));

  const signOut = useCallback(() => {
    rawRequest("/api/v1/session", { method: "DELETE" }).catch(() => undefined);
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
  } else if (section === "events" && route.path[1]) {
    page = <EventDetail id={route.path[1]} />;
  } else if (section === "events") {
    page = (
      <Events
        initialSource={route.query.get("source") ?? ""}
        initialState={route.query.get("state") ?? ""}
        initialProject={route.query.get("project") ?? ""}
      />
    );
  } else if (section === "approvals") {
    page = <Approvals />;
  } else if (section === "triggers" && route.path[1]) {
    page = <TriggerDetail name={route.path[1]} project={route.query.get("project") ?? undefined} />;
  } else if (section === "triggers") {
    page = <Triggers />;
  } else if (section === "sources") {
    page = <Sources />;
  } else if (section === "notifications") {
    page = <Notifications />;
  } else if (section === "models") {
    page = <Models selected={route.path[1] ?? null} />;
  } else if (section === "functions") {
    page = <Functions selected={route.path[1] ?? null} project={route.query.get("project")} />;
  } else {
    page = <Workflows />;
  }

  if (!me) {
    return (
      <div className="app">
        <header className="topbar">
          <a className="brand" href={href("workflows")}>
            TwinEngine
          </a>
        </header>
        <ErrorBanner />
        <main className="content">{page}</main>
      </div>
    );
  }

  // the events page is keyed by its query so that a link with ?source=… re-applies it
  const pageKey = section === "events" ? route.query.toString() : "";
  return (
    <SessionContext.Provider value={{ me, signOut }}>
      <LiveProvider>
        <div className="app">
          <header className="topbar">
            <a className="brand" href={href("workflows")}>
              TwinEngine
            </a>
            <Nav section={section} mlflow={me.mlflow} />
            <div className="spacer" />
            <div className="who">
              <Bell />
              <span data-testid="current-user" title={`token ${me.token.id}: ${me.token.scopes.join(", ")}`}>
                {me.user.name}
                {me.user.admin ? " (admin)" : ""}
              </span>
              <button className="secondary" onClick={signOut} data-testid="sign-out">
                Sign out
              </button>
            </div>
          </header>
          <ErrorBanner />
          <main className="content" key={pageKey}>
            {page}
          </main>
        </div>
      </LiveProvider>
    </SessionContext.Provider>
  );
}
