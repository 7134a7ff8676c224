// Verify a Stripe-Signature header signed by hookwall (the official `stripe` package's
// stripe.webhooks.constructEvent does the same). Node.js built-in `crypto` only.
// Run as a script: reads {"body_b64", "headers", "secret"} JSON on stdin, prints ok or bad.
"use strict";
const crypto = require("crypto");

const TOLERANCE_SECONDS = 5 * 60;

// body: the raw request bytes (a Buffer, e.g. from express.raw()), never re-serialised JSON.
// headers: Node's req.headers. secret: the whsec_... string as is (NOT base64-decoded).
function verifyStripe(body, headers, secret, nowSeconds = Date.now() / 1000) {
  let timestamp = "";
  const signatures = [];
  for (const item of (headers["stripe-signature"] || "").split(",")) {
    const [key, ...rest] = item.trim().split("=");
    if (key === "t") timestamp = rest.join("=");
    else if (key === "v1") signatures.push(rest.join("="));
  }
  if (!/^[0-9]+$/.test(timestamp)) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    return false; // too old (a replay?) or too far in the future
  }
  const signed = Buffer.concat([Buffer.from(`${timestamp}.`), body]);
  const expected = Buffer.from(crypto.createHmac("sha256", secret).update(signed).digest("hex"));
  return signatures.some((signature) => {
    const candidate = Buffer.from(signature);
    return candidate.length === expected.length && crypto.timingSafeEqual(candidate, expected);
  });
}

module.exports = { verifyStripe };

if (require.main === module) {
  const testCase = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const headers = {};
  for (const [name, value] of Object.entries(testCase.headers)) {
    headers[name.toLowerCase()] = value;
  }
  const body = Buffer.from(testCase.body_b64, "base64");
  console.log(verifyStripe(body, headers, testCase.secret) ? "ok" : "bad");
}
