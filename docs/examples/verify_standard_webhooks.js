// Verify a Standard Webhooks request signed by hookwall: v1 (HMAC-SHA256) or v1a (Ed25519).
// Node.js built-in `crypto` only. Run as a script: reads {"body_b64", "headers", "secret"}
// JSON on stdin, prints ok or bad.
"use strict";
const crypto = require("crypto");

const TOLERANCE_SECONDS = 5 * 60;

// body: the raw request bytes (a Buffer, e.g. from express.raw()), never re-serialised JSON.
// headers: Node's req.headers (lower-case names).
// secret: "whsec_..." checks v1 (HMAC) signatures; "whpk_..." (Ed25519 public key) checks v1a.
function verifyStandardWebhooks(body, headers, secret, nowSeconds = Date.now() / 1000) {
  const id = headers["webhook-id"] || "";
  const timestamp = headers["webhook-timestamp"] || "";
  const signatures = (headers["webhook-signature"] || "").split(" ").filter(Boolean);
  if (!/^[0-9]+$/.test(timestamp)) return false;
  if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
    return false; // too old (a replay?) or too far in the future
  }
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), body]);

  if (secret.startsWith("whsec_")) {
    const key = Buffer.from(secret.slice("whsec_".length), "base64");
    const expected = crypto.createHmac("sha256", key).update(signed).digest();
    return signatures.some((entry) => {
      const [version, value = ""] = entry.split(",");
      const candidate = Buffer.from(value, "base64");
      return (
        version === "v1" &&
        candidate.length === expected.length &&
        crypto.timingSafeEqual(candidate, expected)
      );
    });
  }

  if (secret.startsWith("whpk_")) {
    const raw = Buffer.from(secret.slice("whpk_".length), "base64");
    const publicKey = crypto.createPublicKey({
      key: { kty: "OKP", crv: "Ed25519", x: raw.toString("base64url") },
      format: "jwk",
    });
    return signatures.some((entry) => {
      const [version, value = ""] = entry.split(",");
      if (version !== "v1a") return false;
      try {
        return crypto.verify(null, signed, publicKey, Buffer.from(value, "base64"));
      } catch {
        return false;
      }
    });
  }

  throw new Error("the secret must start with whsec_ (HMAC) or whpk_ (Ed25519 public key)");
}

module.exports = { verifyStandardWebhooks };

if (require.main === module) {
  const testCase = JSON.parse(require("fs").readFileSync(0, "utf8"));
  const headers = {};
  for (const [name, value] of Object.entries(testCase.headers)) {
    headers[name.toLowerCase()] = value;
  }
  const body = Buffer.from(testCase.body_b64, "base64");
  console.log(verifyStandardWebhooks(body, headers, testCase.secret) ? "ok" : "bad");
}
