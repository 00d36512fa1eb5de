// One notification: kind, title, body, time; clicking it marks it read and follows its link.

import type { Note } from "../api";
import { ago, when } from "../format";
import { noteLink, useLive } from "../live";
import { navigate } from "../router";

export function NoteItem({ note, onFollow }: { note: Note; onFollow?: () => void }) {
  const { markRead } = useLive();
  const link = noteLink(note);
  const follow = () => {
    if (!note.read) void markRead([note.id]);
    onFollow?.();
    if (!link) return;
    if (link.startsWith("#")) navigate(link);
    else window.open(link, "_blank", "noopener");
  };
  return (
    <div
      className={`note${note.read ? "" : " unread"}${link ? " has-link" : ""}`}
      data-testid="note-item"
      data-id={note.id}
      data-kind={note.kind}
      data-read={note.read ? "true" : "false"}
      onClick={follow}
      role={link ? "link" : undefined}
      title={link ? `open ${link}` : undefined}
    >
      <div className="note-head">
        <span className={`badge kind-${note.kind}`} data-testid="note-kind">
          {note.kind}
        </span>
        <strong className="note-title" data-testid="note-title">
          {note.title}
        </strong>
        <span className="muted small note-time" title={when(note.created_at)}>
          {ago(note.created_at)}
        </span>
      </div>
      {note.body && (
        <div className="note-body small" data-testid="note-body">
          {note.body}
        </div>
      )}
      {(note.project || note.trigger) && (
        <div className="muted small">
          {note.project && <>project {note.project}</>}
          {note.trigger && <> · trigger {note.trigger}</>}
        </div>
      )}
    </div>
  );
}
