// The error banner: any component reports an error; the banner shows the server's
// message and hint until dismissed (errors are never swallowed).

import { createContext, useCallback, useContext, useMemo, useState, type ReactNode } from "react";
import { ApiError, errorText } from "./api";

export interface ShownError {
  id: number;
  message: string;
  hint: string | null;
  status: number | null;
  code: string | null;
}

interface ErrorApi {
  errors: ShownError[];
  report: (err: unknown) => void;
  dismiss: (id: number) => void;
  clear: () => void;
}

const ErrorContext = createContext<ErrorApi | null>(null);
let nextId = 1;

export function ErrorProvider({ children }: { children: ReactNode }) {
  const [errors, setErrors] = useState<ShownError[]>([]);
  const report = useCallback((err: unknown) => {
    if (err instanceof DOMException && err.name === "AbortError") return;
    const { message, hint } = errorText(err);
    const status = err instanceof ApiError ? err.status : null;
    const code = err instanceof ApiError ? err.code : null;
    console.error(err);
    setErrors((old) => {
      const same = old.find((e) => e.message === message && e.hint === hint);
      const rest = old.filter((e) => e !== same).slice(-4);
      return [...rest, { id: nextId++, message, hint, status, code }];
    });
  }, []);
  const dismiss = useCallback((id: number) => setErrors((old) => old.filter((e) => e.id !== id)), []);
  const clear = useCallback(() => setErrors([]), []);
  const value = useMemo(() => ({ errors, report, dismiss, clear }), [errors, report, dismiss, clear]);
  return <ErrorContext.Provider value={value}>{children}</ErrorContext.Provider>;
}

export function useErrors(): ErrorApi {
  const ctx = useContext(ErrorContext);
  if (!ctx) throw new Error("useErrors outside ErrorProvider");
  return ctx;
}

export function ErrorBanner() {
  const { errors, dismiss } = useErrors();
  if (errors.length === 0) return null;
  return (
    <div className="error-banner" data-testid="error-banner" role="alert">
      {errors.map((e) => (
        <div key={e.id} className="error-item" data-testid="error-item">
          <div>
            <strong>
              {e.status ? `${e.status}${e.code ? ` ${e.code}` : ""}: ` : "Error: "}
            </strong>
            <span data-testid="error-message">{e.message}</span>
            {e.hint && (
              <div className="error-hint" data-testid="error-hint">
                Hint: {e.hint}
              </div>
            )}
          </div>
          <button className="link" onClick={() => dismiss(e.id)} aria-label="dismiss" data-testid="error-dismiss">
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
