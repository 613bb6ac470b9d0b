// A graphql-ws client (npm graphql-ws, with npm ws as the WebSocket) driven
// by tests/test_asgi_node_client.py.
//
//   node client.mjs <ws url> <token>
//
// Commands arrive on stdin, one JSON object a line:
//   {"op":"subscribe","id":"<name>","query":"...","variables":{...},"extensions":{...}}
//   {"op":"complete","id":"<name>"}      the client unsubscribes
//   {"op":"exit"}
// Everything seen is printed on stdout, one JSON object a line:
//   {"sent":"<raw frame>"} {"raw":"<raw frame>"}       the wire, both ways, exactly
//   {"connected":true} {"closed":[code,"reason"]}
//   {"next":"<name>","value":...} {"error":"<name>","value":...} {"complete":"<name>"}
import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

class LoggingWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => print({ raw: String(event.data) }));
  }
  send(data, ...rest) {
    print({ sent: String(data) });
    return super.send(data, ...rest);
  }
}

const client = createClient({
  url,
  webSocketImpl: LoggingWebSocket,
  connectionParams: { token },
  lazy: false,
  retryAttempts: 0,
  onNonLazyError: () => {},
  on: {
    connected: () => print({ connected: true }),
    closed: (event) => print({ closed: [event.code, event.reason] }),
  },
});

const active = new Map();
for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  if (cmd.op === "subscribe") {
    const name = cmd.id;
    active.set(name, client.subscribe(
      cmd.extensions
        ? { query: cmd.query, variables: cmd.variables ?? {}, extensions: cmd.extensions }
        : { query: cmd.query, variables: cmd.variables ?? {} },
      {
        next: (value) => print({ next: name, value }),
        error: (value) => print({ error: name, value: value instanceof Error ? String(value) : value }),
        complete: () => print({ complete: name }),
      },
    ));
  } else if (cmd.op === "complete") {
    active.get(cmd.id)();
    active.delete(cmd.id);
  } else if (cmd.op === "exit") {
    break;
  }
}
await client.dispose();
process.exit(0);
