// A read-only directed graph drawn with React Flow and laid out with dagre: workflow
// DAGs (inputs, steps, outputs), run DAGs coloured by step state, PROV graphs.

import { memo, useMemo } from "react";
import {
  Background,
  Controls,
  Handle,
  MarkerType,
  Position,
  ReactFlow,
  ReactFlowProvider,
  type Edge,
  type Node,
  type NodeProps,
} from "@xyflow/react";
import { autoLayout, labelWidth } from "../layout";

export type GNode = {
  id: string;
  kind: string;
  label: string;
  state?: string;
  title?: string;
  sub?: string;
};

export interface GEdge {
  source: string;
  target: string;
  label?: string | null;
}

type GData = GNode & { testPrefix: string; horizontal: boolean; selected?: boolean };

const GraphNode = memo(function GraphNode({ data }: NodeProps<Node<GData>>) {
  const classes = ["gnode", `kind-${data.kind}`];
  if (data.state) classes.push(`state-${data.state}`);
  if (data.selected) classes.push("selected");
  return (
    <div
      className={classes.join(" ")}
      data-testid={`${data.testPrefix}-node-${data.id}`}
      data-kind={data.kind}
      data-state={data.state ?? ""}
      title={data.title ?? data.id}
    >
      <Handle
        type="target"
        position={data.horizontal ? Position.Left : Position.Top}
        isConnectable={false}
        className="ghandle"
      />
      <div className="gnode-label">{data.label}</div>
      {data.sub && <div className="gnode-sub">{data.sub}</div>}
      {data.state && <div className="gnode-state">{data.state}</div>}
      <Handle
        type="source"
        position={data.horizontal ? Position.Right : Position.Bottom}
        isConnectable={false}
        className="ghandle"
      />
    </div>
  );
});

const nodeTypes = { g: GraphNode };

export interface FlowGraphProps {
  nodes: GNode[];
  edges: GEdge[];
  testPrefix: string;
  direction?: "LR" | "TB";
  height?: number;
  selected?: string | null;
  onNodeClick?: (node: GNode) => void;
  animateRunning?: boolean;
  /** stored positions (the composer's layout); used when they place every node */
  positions?: Record<string, { x: number; y: number }> | null;
}

function nodeWidth(n: GNode): number {
  return Math.max(labelWidth(n.label), Math.min(260, 24 + (n.sub ?? "").length * 6.2));
}

function nodeHeight(n: GNode): number {
  return 40 + (n.sub ? 14 : 0) + (n.state ? 14 : 0);
}

function FlowGraphInner(props: FlowGraphProps) {
  const { nodes, edges, testPrefix, direction = "LR", selected, onNodeClick } = props;
  const horizontal = direction === "LR";
  // the layout depends only on the structure, so live state changes do not move nodes
  const structure = JSON.stringify([
    nodes.map((n) => [n.id, n.label, n.sub ?? ""]),
    edges.map((e) => [e.source, e.target, e.label ?? ""]),
    direction,
  ]);
  const stored = props.positions;
  const positions = useMemo(
    () =>
      stored && nodes.every((n) => stored[n.id])
        ? stored
        : autoLayout(
        nodes.map((n) => ({ id: n.id, width: nodeWidth(n), height: nodeHeight(n) + 8 })),
        edges,
        direction,
      ),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [structure, stored],
  );
  const rfNodes: Node<GData>[] = useMemo(
    () =>
      nodes.map((n) => ({
        id: n.id,
        type: "g",
        position: positions[n.id] ?? { x: 0, y: 0 },
        data: { ...n, testPrefix, horizontal, selected: selected === n.id },
        style: { width: nodeWidth(n) },
        draggable: true,
        connectable: false,
      })),
    [nodes, positions, testPrefix, horizontal, selected],
  );
  const stateOf = useMemo(() => new Map(nodes.map((n) => [n.id, n.state])), [nodes]);
  const rfEdges: Edge[] = useMemo(
    () =>
      edges.map((e, i) => ({
        id: `e${i}-${e.source}-${e.target}`,
        source: e.source,
        target: e.target,
        label: e.label ?? undefined,
        animated: props.animateRunning ? stateOf.get(e.target) === "running" : false,
        markerEnd: { type: MarkerType.ArrowClosed, width: 16, height: 16 },
        labelBgPadding: [4, 2] as [number, number],
        labelStyle: { fontSize: 11 },
      })),
    [edges, stateOf, props.animateRunning],
  );
  return (
    <div className="flow-box" style={{ height: props.height ?? 380 }} data-testid={`${testPrefix}-graph`}>
      <ReactFlow
        nodes={rfNodes}
        edges={rfEdges}
        nodeTypes={nodeTypes}
        fitView
        fitViewOptions={{ padding: 0.15, maxZoom: 1.2 }}
        minZoom={0.1}
        nodesConnectable={false}
        proOptions={{ hideAttribution: true }}
        onNodeClick={(_, node) => onNodeClick?.(node.data as GData)}
      >
        <Background gap={16} size={1} />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}

export function FlowGraph(props: FlowGraphProps) {
  // a new structure remounts the canvas so that it fits the view again
  const key = `${props.nodes.length}:${props.edges.length}:${props.nodes.map((n) => n.id).join(",")}`;
  return (
    <ReactFlowProvider key={key}>
      <FlowGraphInner {...props} />
    </ReactFlowProvider>
  );
}
