// One POST through an HTTP proxy with undici's ProxyAgent, trusting one CA for the target's
// TLS (inside the tunnel); prints what the client got as one JSON line:
//   {"status": 403, "headers": {...}, "body": "..."} or {"error": "...", "code": "..."}
// Usage: node post.mjs PROXY_URL TARGET_URL CA_FILE
import { readFileSync } from "node:fs";
import { ProxyAgent, request } from "undici";

const [proxy, target, caFile] = process.argv.slice(2);
const dispatcher = new ProxyAgent({
  uri: proxy,
  requestTls: { ca: readFileSync(caFile, "utf8") },
});
try {
  const answer = await request(target, {
    method: "POST",
    dispatcher,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ type: "invoice.paid" }),
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const body = await answer.body.text();
  console.log(JSON.stringify({ status: answer.statusCode, headers: answer.headers, body }));
} catch (error) {
  console.log(JSON.stringify({ error: String(error?.message ?? error), code: error?.code ?? null }));
} finally {
  await dispatcher.close();
}
