// Previous/next pagination for {items, total, limit, offset} lists.

export function Pager(props: {
  total: number;
  limit: number;
  offset: number;
  onOffset: (offset: number) => void;
  testId?: string;
}) {
  const { total, limit, offset, onOffset } = props;
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(total, offset + limit);
  return (
    <div className="pager" data-testid={props.testId ?? "pager"}>
      <button className="secondary" disabled={offset <= 0} onClick={() => onOffset(Math.max(0, offset - limit))}>
        ‹ Previous
      </button>
      <span className="muted">
        {first}–{last} of {total}
      </span>
      <button className="secondary" disabled={offset + limit >= total} onClick={() => onOffset(offset + limit)}>
        Next ›
      </button>
    </div>
  );
}
