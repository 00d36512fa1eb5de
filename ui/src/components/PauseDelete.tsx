// The Pause/Resume and Delete buttons of a pausable item (event sources, triggers), the
// hook that runs those actions (built on useAction, one action at a time on a page): a confirmation before a delete, errors in the banner, the
// list reloaded afterwards, every button disabled while one action is under way.

import { useState } from "react";
import { useErrors } from "../errors";

export type PauseAction = "pause" | "resume" | "delete";

/** One action at a time on the items of a page: ``busy`` names the item being acted on,
 * errors go to the banner, and ``reload`` runs after each action. */
export function useAction(reload: () => void) {
  const { report } = useErrors();
  const [busy, setBusy] = useState<string | null>(null);
  /** Run ``what`` for the item ``key``; true when it was done. */
  const run = async (key: string, what: () => Promise<unknown>): Promise<boolean> => {
    setBusy(key);
    try {
      await what();
      return true;
    } catch (err) {
      report(err);
      return false;
    } finally {
      setBusy(null);
      reload();
    }
  };
  return { busy, run };
}

export function usePauseDelete(
  noun: string,
  pause: (name: string, paused: boolean, project?: string) => Promise<unknown>,
  remove: (name: string, project?: string) => Promise<unknown>,
  reload: () => void,
) {
  const { busy, run } = useAction(reload);
  /** Run one action on the item ``name`` of ``project`` (names are per project); true
   * when it was done. */
  const act = async (name: string, what: PauseAction, project?: string): Promise<boolean> => {
    const label = project ? `${name} (project ${project})` : name;
    if (what === "delete" && !window.confirm(`Delete ${noun} ${label}?`)) return false;
    return run(`${project ?? ""}/${name}`, () =>
      what === "delete" ? remove(name, project) : pause(name, what === "pause", project),
    );
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
