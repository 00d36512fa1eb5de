// The signed-in session: the API token (localStorage) and who it belongs to (/me).

import { createContext, useContext } from "react";
import type { Me } from "./api";

export interface Session {
  me: Me;
  signOut: () => void;
}

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error("useSession outside a signed-in page");
  return s;
}
