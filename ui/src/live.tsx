// What the top bar keeps live for the whole signed-in session: the notification inbox
// (its unread count and latest notes, fed by the SSE stream /api/v1/notifications/stream
// over fetch, polling every 5 s while the stream is down and reconnecting with back-off)
// and the deliveries waiting for approval (polled every 4 s, and at once when an
// `approval_needed` note arrives or someone here decides).

import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState, type ReactNode } from "react";
import { api, type Delivery, type Note } from "./api";
import { useErrors } from "./errors";
import { openEventStream, parseData } from "./sse";

const KEEP = 30; // notes kept for the dropdown
const NOTE_POLL_MS = 5000;
const APPROVAL_POLL_MS = 4000;

export type LiveMode = "connecting" | "live" | "polling";

export interface Live {
  notes: Note[];
  unread: number;
  mode: LiveMode;
  approvals: Delivery[] | null;
  refreshNotes: () => Promise<void>;
  refreshApprovals: () => Promise<void>;
  markRead: (ids: string[] | "all") => Promise<void>;
}

const LiveContext = createContext<Live | null>(null);

export function useLive(): Live {
  const live = useContext(LiveContext);
  if (!live) throw new Error("useLive outside LiveProvider");
  return live;
}

/** A list loaded now (errors reported) and again every `ms` milliseconds (quietly);
 *  `reload(true)` refreshes it after a change. */
export function usePolled<T>(
  fetch: () => Promise<{ items: T[] }>,
  ms: number,
): [T[] | null, (quiet?: boolean) => Promise<void>] {
  const { report } = useErrors();
  const [items, setItems] = useState<T[] | null>(null);
  const fetchRef = useRef(fetch);
  fetchRef.current = fetch;
  const reload = useCallback(
    (quiet = false) =>
      fetchRef
        .current()
        .then((page) => setItems(page.items))
        .catch((err) => {
          if (!quiet) report(err);
        }),
    [report],
  );
  useEffect(() => {
    reload();
  }, [reload]);
  useInterval(() => reload(true), ms);
  return [items, reload];
}

/** Calls `fn` every `ms` milliseconds while mounted (and while the tab is visible). */
export function useInterval(fn: () => void, ms: number | null): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (ms === null) return;
    const timer = window.setInterval(() => {
      if (document.visibilityState !== "hidden") ref.current();
    }, ms);
    return () => window.clearInterval(timer);
  }, [ms]);
}

export function LiveProvider({ children }: { children: ReactNode }) {
  const { report } = useErrors();
  const [inbox, setInbox] = useState<{ notes: Note[]; unread: number }>({ notes: [], unread: 0 });
  const [mode, setMode] = useState<LiveMode>("connecting");
  const [approvals, setApprovals] = useState<Delivery[] | null>(null);
  const noteFailures = useRef(0);
  const approvalFailures = useRef(0);

  const refreshNotes = useCallback(
    () =>
      api
        .notifications({ limit: KEEP })
        .then((page) => {
          noteFailures.current = 0;
          setInbox({ notes: page.items, unread: page.unread });
        })
        .catch((err) => {
          if (noteFailures.current++ === 0) report(err);
        }),
    [report],
  );

  const refreshApprovals = useCallback(
    () =>
      api
        .approvals()
        .then((page) => {
          approvalFailures.current = 0;
          setApprovals(page.items);
        })
        .catch((err) => {
          if (approvalFailures.current++ === 0) report(err);
        }),
    [report],
  );

  const markRead = useCallback(
    async (ids: string[] | "all") => {
      if (ids !== "all" && ids.length === 0) return;
      try {
        await api.markRead(ids === "all" ? { all: true } : { ids });
        const set = ids === "all" ? null : new Set(ids);
        setInbox((old) => {
          const notes = old.notes.map((n) => (!set || set.has(n.id) ? { ...n, read: true } : n));
          const newlyRead = old.notes.filter((n) => !n.read && (!set || set.has(n.id))).length;
          return { notes, unread: set ? Math.max(0, old.unread - newlyRead) : 0 };
        });
      } catch (err) {
        report(err);
      }
      await refreshNotes(); // the server's count (project-wide notes, others' marks)
    },
    [report, refreshNotes],
  );

  const refs = useRef({ refreshNotes, refreshApprovals });
  refs.current = { refreshNotes, refreshApprovals };

  // the notification stream, with polling while it is down
  useEffect(() => {
    const abort = new AbortController();
    let poll: number | null = null;
    let retry: number | null = null;
    let delay = 2000;
    const stopPolling = () => {
      if (poll !== null) window.clearInterval(poll);
      poll = null;
    };
    const fallBack = () => {
      if (abort.signal.aborted) return;
      setMode("polling");
      if (poll === null) poll = window.setInterval(() => refs.current.refreshNotes(), NOTE_POLL_MS);
      retry = window.setTimeout(connect, delay);
      delay = Math.min(delay * 2, 60_000);
    };
    const connect = () => {
      retry = null;
      openEventStream(
        "/api/v1/notifications/stream",
        (ev) => {
          if (ev.event !== "note") return;
          const note = parseData<Note>(ev);
          if (!note || !note.id) return;
          setInbox((old) =>
            old.notes.some((n) => n.id === note.id)
              ? old
              : { notes: [note, ...old.notes].slice(0, KEEP), unread: old.unread + (note.read ? 0 : 1) },
          );
          if (note.kind === "approval_needed") refs.current.refreshApprovals();
        },
        abort.signal,
        () => {
          setMode("live");
          stopPolling();
          delay = 2000;
          refs.current.refreshNotes(); // whatever came while the stream was down
        },
      )
        .then(fallBack)
        .catch((err) => {
          if (abort.signal.aborted) return;
          console.warn("notification stream failed; polling every 5 s", err);
          fallBack();
        });
    };
    refs.current.refreshNotes();
    connect();
    return () => {
      abort.abort();
      stopPolling();
      if (retry !== null) window.clearTimeout(retry);
    };
  }, []);

  useEffect(() => {
    refreshApprovals();
  }, [refreshApprovals]);
  useInterval(refreshApprovals, APPROVAL_POLL_MS);

  const value = useMemo(
    () => ({ notes: inbox.notes, unread: inbox.unread, mode, approvals, refreshNotes, refreshApprovals, markRead }),
    [inbox, mode, approvals, refreshNotes, refreshApprovals, markRead],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

/** Whether a link is a path of this site that no browser reads as another site — the
 * server's rule (notify/note.py is_ui_path): "/" alone, or one "/" followed by a
 * character that is not "/" or "\\", and no backslash, whitespace or control character. */
export function isUiPath(link: string): boolean {
  if (!link.startsWith("/") || link.length > 2000) return false;
  if (link.length > 1 && (link[1] === "/" || link[1] === "\\")) return false;
  return !/[\\\s\p{C}]/u.test(link);
}

/** Where a note leads in the UI: its link (a path of this site only), else what its data
 * names. */
export function noteLink(note: Note): string | null {
  const link = note.link;
  if (link && isUiPath(link)) {
    if (link.startsWith("/#/")) return link.slice(1);
    return link;
  }
  const data = note.data ?? {};
  if (note.kind === "approval_needed") return "#/approvals";
  if (typeof data.run === "string") return `#/runs/${encodeURIComponent(data.run)}`;
  if (typeof data.event === "string") return `#/events/${encodeURIComponent(data.event)}`;
  if (note.kind === "source_down" && typeof data.source === "string") return "#/sources";
  return null;
}
