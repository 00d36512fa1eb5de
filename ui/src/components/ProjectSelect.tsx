// The project a new workflow, function or composed workflow goes into: "default" first,
// then the signed-in user's other projects.

import { useSession } from "../auth";

export function ProjectSelect({
  value,
  onChange,
  testId,
}: {
  value: string;
  onChange: (project: string) => void;
  testId: string;
}) {
  const { me } = useSession();
  return (
    <select value={value} onChange={(e) => onChange(e.target.value)} data-testid={testId}>
      <option value="">default</option>
      {me.projects
        .filter((p) => p.name !== "default")
        .map((p) => (
          <option key={p.name} value={p.name}>
            {p.name}
          </option>
        ))}
    </select>
  );
}
