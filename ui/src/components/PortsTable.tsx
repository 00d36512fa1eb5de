import type { Port } from "../api";

export function PortsTable({ ports, testId, withDefault }: { ports: Port[]; testId: string; withDefault?: boolean }) {
  if (ports.length === 0) return <p className="muted">none</p>;
  return (
    <table className="table compact" data-testid={testId}>
      <thead>
        <tr>
          <th>Id</th>
          <th>Type</th>
          {withDefault && <th>Default</th>}
          <th>Description</th>
        </tr>
      </thead>
      <tbody>
        {ports.map((p) => (
          <tr key={p.id}>
            <td>
              <code>{p.id}</code>
            </td>
            <td>
              <code>{p.type}</code>
            </td>
            {withDefault && (
              <td className="mono">{p.default === undefined || p.default === null ? "" : JSON.stringify(p.default)}</td>
            )}
            <td>{p.label ?? ""}{p.label && p.doc ? " — " : ""}{p.doc ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
