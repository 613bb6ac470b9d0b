// A graphql-sse client (npm graphql-sse, Node's fetch) driven by
// tests/test_sse_node_client.py.
//
//   node sse_client.mjs <http url> <single|distinct> <token>
//
// The token goes in an Authorization: Bearer header. Retries (after a cut
// connection) wait 50 ms; none when the test asks for "retries": 0.
// Commands arrive on stdin, one JSON object a line:
//   {"op":"subscribe","id":"<name>","query":"...","variables":{...},"extensions":{...}}
//     with "extensions":{"positions":true} each result carries its position; the client
//     keeps the last one and sends it as Last-Event-ID when it connects again (the
//     graphql-sse client reads no SSE id: field itself)
//   {"op":"complete","id":"<name>"}      the client unsubscribes
//   {"op":"exit"}
// Everything seen is printed on stdout, one JSON object a line:
//   {"connected":<reconnect?>} {"connecting":<reconnect?>} {"message":{event,data}}
//   {"next":"<name>","value":...} {"error":"<name>","value":"<message>"} {"complete":"<name>"}
import { createInterface } from "node:readline";
import { createClient } from "graphql-sse";

const [url, mode, token, retries] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

let lastPosition = null;
const client = createClient({
  url,
  singleConnection: mode === "single",
  headers: () => ({
    authorization: `Bearer ${token}`,
    ...(lastPosition === null ? {} : { "last-event-id": lastPosition }),
  }),
  retryAttempts: Number(retries ?? 5),
  retry: () => new Promise((resolve) => setTimeout(resolve, 50)),
  on: {
    connecting: (reconnecting) => print({ connecting: reconnecting }),
    connected: (reconnected) => print({ connected: reconnected }),
    message: (message) => print({ message }),
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
        next: (value) => {
          lastPosition = value?.extensions?.position ?? lastPosition;
          print({ next: name, value });
        },
        error: (value) => print({ error: name, value: value instanceof Error ? value.message : String(value) }),
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
client.dispose();
process.exit(0);
