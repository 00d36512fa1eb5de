// The composer's node components: a step (input ports as left handles, output ports as
// right handles), a workflow input (one output handle) and a workflow output (one input).

import { memo } from "react";
import { Handle, Position, useNodeConnections, type NodeProps } from "@xyflow/react";
import type { InputNode, OutputNode, StepNode } from "./model";

export const StepNodeView = memo(function StepNodeView({ data, selected }: NodeProps<StepNode>) {
  const connections = useNodeConnections({ handleType: "target" });
  const connected = new Set(connections.map((c) => c.targetHandle));
  const { item, name, params } = data;
  return (
    <div
      className={`cnode cnode-step${selected ? " selected" : ""}`}
      data-testid={`composer-node-${name}`}
      data-kind="step"
      data-ref={item.ref}
    >
      <div className="cnode-head">
        <span className="cnode-name">{name}</span>
        <span className="cnode-ref">{item.kind === "template" ? item.name : `${item.name} v${item.version ?? "?"}`}</span>
      </div>
      <div className="cnode-ports">
        <div className="cnode-col">
          {item.inputs.map((p) => {
            const value = params[p.id];
            return (
              <div className="port port-in" key={p.id} title={`${p.id}: ${p.type}`}>
                <Handle
                  type="target"
                  position={Position.Left}
                  id={p.id}
                  className="phandle"
                  data-testid={`handle-${name}-in-${p.id}`}
                />
                <span className="port-name">{p.id}</span>
                <span className="port-type">{p.type}</span>
                {!connected.has(p.id) && value !== undefined && value !== "" && (
                  <span className="port-value" data-testid={`param-value-${name}-${p.id}`}>
                    = {value.length > 18 ? `${value.slice(0, 18)}…` : value}
                  </span>
                )}
              </div>
            );
          })}
        </div>
        <div className="cnode-col right">
          {item.outputs.map((p) => (
            <div className="port port-out" key={p.id} title={`${p.id}: ${p.type}`}>
              <span className="port-type">{p.type}</span>
              <span className="port-name">{p.id}</span>
              <Handle
                type="source"
                position={Position.Right}
                id={p.id}
                className="phandle"
                data-testid={`handle-${name}-out-${p.id}`}
              />
            </div>
          ))}
        </div>
      </div>
    </div>
  );
});

export const InputNodeView = memo(function InputNodeView({ data, selected }: NodeProps<InputNode>) {
  return (
    <div className={`cnode cnode-input${selected ? " selected" : ""}`} data-testid={`composer-node-${data.name}`} data-kind="input">
      <div className="cnode-head">
        <span className="cnode-tag">input</span>
        <span className="cnode-name">{data.name}</span>
      </div>
      <div className="cnode-body">
        <span className="port-type">{data.type}</span>
        {data.default !== "" && <span className="port-value"> = {data.default}</span>}
      </div>
      <Handle type="source" position={Position.Right} id="value" className="phandle" data-testid={`handle-${data.name}-out`} />
    </div>
  );
});

export const OutputNodeView = memo(function OutputNodeView({ data, selected }: NodeProps<OutputNode>) {
  return (
    <div className={`cnode cnode-output${selected ? " selected" : ""}`} data-testid={`composer-node-${data.name}`} data-kind="output">
      <Handle type="target" position={Position.Left} id="value" className="phandle" data-testid={`handle-${data.name}-in`} />
      <div className="cnode-head">
        <span className="cnode-tag">output</span>
        <span className="cnode-name">{data.name}</span>
      </div>
    </div>
  );
});

export const composerNodeTypes = { step: StepNodeView, wfinput: InputNodeView, wfoutput: OutputNodeView };
