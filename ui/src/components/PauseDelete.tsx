// The Pause/Resume and Delete buttons of a pausable item (event sources, triggers) and the
// hook that runs those actions: a confirmation before a delete, errors in the banner, the
// list reloaded afterwards, every button disabled while one action is under way.

import { useState } from "react";
import { useErrors } from "../errors";

export type PauseAction = "pause" | "resume" | "delete";

export function usePauseDelete(
  noun: string,
  pause: (name: string, paused: boolean) => Promise<unknown>,
  remove: (name: string) => Promise<unknown>,
  reload: () => void,
) {
  const { report } = useErrors();
  const [busy, setBusy] = useState<string | null>(null);
  /** Run one action on the item ``name``; true when it was done. */
  const act = async (name: string, what: PauseAction): Promise<boolean> => {
    if (what === "delete" && !window.confirm(`Delete ${noun} ${name}?`)) return false;
    setBusy(name);
    try {
      if (what === "delete") await remove(name);
      else await pause(name, what === "pause");
      return true;
    } catch (err) {
      report(err);
      return false;
    } finally {
      setBusy(null);
      reload();
    }
  };
  return { busy, act };
}

export function PauseDeleteButtons({
  paused,
  disabled,
  onToggle,
  onDelete,
  toggleTestId,
  deleteTestId,
  small = true,
}: {
  paused: boolean;
  disabled: boolean;
  onToggle: () => void;
  onDelete: () => void;
  toggleTestId: string;
  deleteTestId: string;
  small?: boolean;
}) {
  const size = small ? " small" : "";
  return (
    <>
      <button className={`secondary${size}`} disabled={disabled} onClick={onToggle} data-testid={toggleTestId}>
        {paused ? "Resume" : "Pause"}
      </button>
      <button className={`danger${size}`} disabled={disabled} onClick={onDelete} data-testid={deleteTestId}>
        Delete
      </button>
    </>
  );
}
