// Verify a Standard Webhooks request signed by hookwall: v1 (HMAC-SHA256) or v1a (Ed25519).
// Go standard library only. Run as a program: reads {"body_b64", "headers", "secret"} JSON
// on stdin, prints ok or bad.
package main

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const toleranceSeconds = 5 * 60

// VerifyStandardWebhooks reports whether any listed signature matches.
// body: the raw request bytes (io.ReadAll(r.Body)), never re-serialised JSON.
// secret: "whsec_..." checks v1 (HMAC) signatures; "whpk_..." (Ed25519 public key) checks v1a.
func VerifyStandardWebhooks(body []byte, header http.Header, secret string, now time.Time) bool {
	id := header.Get("Webhook-Id")
	timestamp := header.Get("Webhook-Timestamp")
	ts, err := strconv.ParseUint(timestamp, 10, 63)
	if err != nil {
		return false
	}
	if age := now.Unix() - int64(ts); age > toleranceSeconds || age < -toleranceSeconds {
		return false // too old (a replay?) or too far in the future
	}
	signed := append([]byte(id+"."+timestamp+"."), body...)
	entries := strings.Fields(header.Get("Webhook-Signature"))

	switch {
	case strings.HasPrefix(secret, "whsec_"):
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
		if err != nil {
			return false
		}
		mac := hmac.New(sha256.New, key)
		mac.Write(signed)
		expected := mac.Sum(nil)
		for _, entry := range entries {
			version, value, _ := strings.Cut(entry, ",")
			candidate, err := base64.StdEncoding.DecodeString(value)
			if version == "v1" && err == nil && hmac.Equal(candidate, expected) {
				return true
			}
		}
	case strings.HasPrefix(secret, "whpk_"):
		publicKey, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whpk_"))
		if err != nil || len(publicKey) != ed25519.PublicKeySize {
			return false
		}
		for _, entry := range entries {
			version, value, _ := strings.Cut(entry, ",")
			signature, err := base64.StdEncoding.DecodeString(value)
			if version == "v1a" && err == nil && ed25519.Verify(publicKey, signed, signature) {
				return true
			}
		}
	}
	return false
}

func main() {
	var testCase struct {
		BodyB64 string            `json:"body_b64"`
		Headers map[string]string `json:"headers"`
		Secret  string            `json:"secret"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&testCase); err != nil {
		panic(err)
	}
	body, err := base64.StdEncoding.DecodeString(testCase.BodyB64)
	if err != nil {
		panic(err)
	}
	header := http.Header{}
	for name, value := range testCase.Headers {
		header.Add(name, value)
	}
	if VerifyStandardWebhooks(body, header, testCase.Secret, time.Now()) {
		fmt.Println("ok")
	} else {
		fmt.Println("bad")
	}
}
