// Verify hookwall's generic HMAC scheme (one configurable header). Node.js built-in `crypto`
// only. Covers value templates of the form "<prefix>{signature}", over the body or, with a
// timestamp header, over timestamp + separator + body. Run as a script: reads
// {"body_b64", "headers", "secret", "options"} JSON on stdin, prints ok or bad.
"use strict";
const crypto = require("crypto");

const TOLERANCE_SECONDS = 5 * 60;

// body: the raw request bytes (a Buffer), never re-serialised JSON.
// headerValue: the signature header's value; several keys arrive as values joined by ", ".
// timestamp: the timestamp header's value, or undefined when the scheme sends none.
function verifyGenericHmac(body, headerValue, secret, options = {}) {
  const {
    algorithm = "sha256", // or "sha512"
    encoding = "hex", // or "base64"
    prefix = "", // the text before {signature} in the template, e.g. "sha256="
    timestamp = undefined,
    separator = ".",
    nowSeconds = Date.now() / 1000,
  } = options;
  let signed = body;
  if (timestamp !== undefined) {
    if (!/^[0-9]+$/.test(timestamp)) return false;
    if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
      return false; // too old (a replay?) or too far in the future
    }
    signed = Buffer.concat([Buffer.from(`${timestamp}${separator}`), body]);
  }
  const digest = crypto.createHmac(algorithm, secret).update(signed).digest(encoding);
  const expected = Buffer.from(prefix + digest);
  return (headerValue || "").split(", ").some((value) => {
    const candidate = Buffer.from(value.trim());
    return candidate.length === expected.length && crypto.timingSafeEqual(candidate, expected);
  });
}

module.exports = { verifyGenericHmac };

if (require.main === module) {
  const testCase = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const headers = {};
  for (const [name, value] of Object.entries(testCase.headers)) {
    headers[name.toLowerCase()] = value;
  }
  const { header = "x-signature", timestamp_header: timestampHeader, ...options } =
    testCase.options || {};
  if (timestampHeader) options.timestamp = headers[timestampHeader.toLowerCase()] || "";
  const body = Buffer.from(testCase.body_b64, "base64");
  const value = headers[header.toLowerCase()] || "";
  console.log(verifyGenericHmac(body, value, testCase.secret, options) ? "ok" : "bad");
}
