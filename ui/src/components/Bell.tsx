// The bell in the top bar: the unread count (live), and a dropdown with the latest notes.

import { useEffect, useRef, useState } from "react";
import { useLive } from "../live";
import { href } from "../router";
import { NoteItem } from "./NoteItem";

const SHOWN = 8;

export function Bell() {
  const { notes, unread, mode, markRead } = useLive();
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    if (!open) return;
    const onDown = (e: MouseEvent) => {
      if (box.current && !box.current.contains(e.target as Node)) setOpen(false);
    };
    const onHash = () => setOpen(false);
    document.addEventListener("mousedown", onDown);
    window.addEventListener("hashchange", onHash);
    return () => {
      document.removeEventListener("mousedown", onDown);
      window.removeEventListener("hashchange", onHash);
    };
  }, [open]);

  return (
    <div className="bell-box" ref={box}>
      <button
        className={`bell${unread > 0 ? " has-unread" : ""}`}
        onClick={() => setOpen((o) => !o)}
        aria-label={`notifications: ${unread} unread`}
        title={`${unread} unread · ${mode === "live" ? "live" : mode}`}
        data-testid="notif-bell"
        data-unread={unread}
        data-mode={mode}
      >
        <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true">
          <path
            fill="currentColor"
            d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z"
          />
        </svg>
        {unread > 0 && (
          <span className="count" data-testid="notif-count">
            {unread > 99 ? "99+" : unread}
          </span>
        )}
      </button>
      {open && (
        <div className="dropdown" data-testid="notif-dropdown">
          <div className="dropdown-head">
            <strong>Notifications</strong>
            <span className={`live-mode ${mode}`}>{mode === "live" ? "● live" : mode}</span>
            <div className="spacer" />
            <button
              className="link small"
              disabled={unread === 0}
              onClick={() => void markRead("all")}
              data-testid="notif-mark-all"
            >
              Mark all read
            </button>
          </div>
          {notes.length === 0 ? (
            <p className="muted small dropdown-empty">No notifications.</p>
          ) : (
            notes.slice(0, SHOWN).map((n) => <NoteItem key={n.id} note={n} onFollow={() => setOpen(false)} />)
          )}
          <a className="dropdown-foot" href={href("notifications")} data-testid="notif-all">
            All notifications and subscriptions →
          </a>
        </div>
      )}
    </div>
  );
}
