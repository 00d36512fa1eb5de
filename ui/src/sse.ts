// Server-Sent Events over fetch + ReadableStream (EventSource cannot send the bearer
// token). `openEventStream` parses "event:"/"data:" lines and calls `onEvent`; it
// resolves when the server closes the stream and rejects when it fails.

import { rawRequest } from "./api";

export interface SseEvent {
  event: string;
  data: string;
}

export async function openEventStream(
  path: string,
  onEvent: (event: SseEvent) => void,
  signal: AbortSignal,
  onOpen?: () => void,
): Promise<void> {
  const response = await rawRequest(path, { signal });
  if (!response.body) throw new Error("the event stream has no body");
  onOpen?.();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let eventName = "";
  let data: string[] = [];
  const dispatch = () => {
    if (data.length > 0) onEvent({ event: eventName || "message", data: data.join("\n") });
    eventName = "";
    data = [];
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.search(/\r\n|\r|\n/)) >= 0) {
        const line = buffer.slice(0, newline);
        const skip = buffer.startsWith("\r\n", newline) ? 2 : 1;
        buffer = buffer.slice(newline + skip);
        if (line === "") {
          dispatch();
        } else if (line.startsWith(":")) {
          // comment (": ping")
        } else {
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          let value = colon < 0 ? "" : line.slice(colon + 1);
          if (value.startsWith(" ")) value = value.slice(1);
          if (field === "event") eventName = value;
          else if (field === "data") data.push(value);
        }
      }
    }
    dispatch();
  } finally {
    reader.releaseLock();
  }
}

export function parseData<T>(event: SseEvent): T | null {
  try {
    return JSON.parse(event.data) as T;
  } catch {
    return null;
  }
}
