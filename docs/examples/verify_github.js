// Verify a GitHub-style X-Hub-Signature-256 header signed by hookwall.
// Node.js built-in `crypto` only. Run as a script: reads {"body_b64", "headers", "secret"}
// JSON on stdin, prints ok or bad.
"use strict";
const crypto = require("crypto");

// body: the raw request bytes (a Buffer, e.g. from express.raw()), never re-serialised JSON.
// headers: Node's req.headers. During key rotation hookwall sends one X-Hub-Signature-256
// line per key; Node joins repeated lines with ", ", so accept a match on any part.
function verifyGitHub(body, headers, secret) {
  const header = headers["x-hub-signature-256"] || "";
  const lines = Array.isArray(header) ? header : [header];
  const expected = Buffer.from(
    "sha256=" + crypto.createHmac("sha256", secret).update(body).digest("hex"),
  );
  return lines
    .flatMap((line) => line.split(","))
    .some((part) => {
      const candidate = Buffer.from(part.trim());
      return candidate.length === expected.length && crypto.timingSafeEqual(candidate, expected);
    });
}

module.exports = { verifyGitHub };

if (require.main === module) {
  const testCase = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const headers = {};
  for (const [name, value] of Object.entries(testCase.headers)) {
    headers[name.toLowerCase()] = value;
  }
  const body = Buffer.from(testCase.body_b64, "base64");
  console.log(verifyGitHub(body, headers, testCase.secret) ? "ok" : "bad");
}
