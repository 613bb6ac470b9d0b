// Headless Chromium (Debian's /usr/bin/chromium) driven through playwright-core
// by tests/test_sse_browser.py.
//
//   node browser.mjs <chromium executable> <user data dir>
//
// Commands on stdin, one JSON object a line; one JSON line answers each:
//   {"op":"open","url":"..."}                         -> {"opened":true}
//   {"op":"wait","events":n,"status":"live","opens":k} -> the page's state once it has at
//        least n events, that status and k opens (each optional)
//   {"op":"screenshot","path":"..."}                  -> {"saved":"..."}
//   {"op":"exit"}
// The page's state: {"events":[...],"notices":[...],"status":"...","opens":k,"requests":[...]}
// where requests are the stream requests the browser made (url, last-event-id).
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const [executablePath, userDataDir] = process.argv.slice(2);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] ?? await context.newPage();
const requests = [];
page.on("request", async (request) => {
  if (request.url().includes("/graphql")) {
    const entry = { url: request.url(), lastEventId: null };
    requests.push(entry);
    // headers() leaves out what the network stack adds, Last-Event-ID among them
    entry.lastEventId = (await request.allHeaders())["last-event-id"] ?? null;
  }
});

const state = () => page.evaluate(() => ({
  events: [...document.querySelectorAll("#events li")].map((li) => li.textContent),
  notices: [...document.querySelectorAll("#notices li")].map((li) => li.textContent),
  status: document.getElementById("status").textContent,
  opens: Number(document.getElementById("opens").textContent),
}));

for await (const line of createInterface({ input: process.stdin })) {
  const cmd = JSON.parse(line);
  try {
    if (cmd.op === "open") {
      await page.goto(cmd.url);
      print({ opened: true });
    } else if (cmd.op === "wait") {
      await page.waitForFunction(({ events, status, opens }) =>
        document.querySelectorAll("#events li").length >= (events ?? 0)
        && (status === undefined || document.getElementById("status").textContent === status)
        && Number(document.getElementById("opens").textContent) >= (opens ?? 0),
      { events: cmd.events, status: cmd.status, opens: cmd.opens }, { timeout: 20000, polling: 20 });
      print({ ...(await state()), requests });
    } else if (cmd.op === "screenshot") {
      await page.screenshot({ path: cmd.path, fullPage: true });
      print({ saved: cmd.path });
    } else if (cmd.op === "exit") {
      break;
    }
  } catch (err) {
    print({ failed: String(err), ...(await state().catch(() => ({}))), requests });
  }
}
await context.close();
process.exit(0);
