// Previous/next pagination for {items, total, limit, offset} lists (or, where a list
// gives no total, for "is there a next page": `hasMore`).

export function Pager(props: {
  total: number | null | undefined;
  limit: number;
  offset: number;
  onOffset: (offset: number) => void;
  testId?: string;
  /** used when total is unknown */
  shown?: number;
  hasMore?: boolean;
}) {
  const { limit, offset, onOffset } = props;
  const known = typeof props.total === "number";
  const total = known ? (props.total as number) : offset + (props.shown ?? 0);
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(total, offset + limit);
  const hasNext = known ? offset + limit < total : Boolean(props.hasMore);
  return (
    <div className="pager" data-testid={props.testId ?? "pager"}>
      <button className="secondary" disabled={offset <= 0} onClick={() => onOffset(Math.max(0, offset - limit))}>
        ‹ Previous
      </button>
      <span className="muted">
        {first}–{last}
        {known ? ` of ${total}` : hasNext ? " of more" : ""}
      </span>
      <button className="secondary" disabled={!hasNext} onClick={() => onOffset(offset + limit)}>
        Next ›
      </button>
    </div>
  );
}
