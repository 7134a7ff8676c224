// Verify hookwall's generic HMAC scheme (one configurable header). Go standard library only.
// Covers value templates of the form "<prefix>{signature}", over the body or, with a
// timestamp header, over timestamp + separator + body. Run as a program: reads
// {"body_b64", "headers", "secret", "options"} JSON on stdin, prints ok or bad.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const toleranceSeconds = 5 * 60

// GenericOptions mirrors the scheme's configuration on the hookwall side.
type GenericOptions struct {
	Algorithm       string `json:"algorithm"`        // "sha256" (default) or "sha512"
	Encoding        string `json:"encoding"`         // "hex" (default) or "base64"
	Prefix          string `json:"prefix"`           // text before {signature}, e.g. "sha256="
	TimestampHeader string `json:"timestamp_header"` // empty when the scheme sends none
	Separator       string `json:"separator"`        // between timestamp and body (default ".")
}

// VerifyGenericHmac reports whether any of the ", "-separated values matches.
// body: the raw request bytes (io.ReadAll(r.Body)), never re-serialised JSON.
func VerifyGenericHmac(body []byte, value string, header http.Header, secret string,
	opts GenericOptions, now time.Time) bool {
	newHash := sha256.New
	if opts.Algorithm == "sha512" {
		newHash = sha512.New
	}
	mac := hmac.New(func() hash.Hash { return newHash() }, []byte(secret))
	if opts.TimestampHeader != "" {
		timestamp := header.Get(opts.TimestampHeader)
		ts, err := strconv.ParseUint(timestamp, 10, 63)
		if err != nil {
			return false
		}
		if age := now.Unix() - int64(ts); age > toleranceSeconds || age < -toleranceSeconds {
			return false // too old (a replay?) or too far in the future
		}
		separator := opts.Separator
		if separator == "" {
			separator = "."
		}
		mac.Write([]byte(timestamp + separator))
	}
	mac.Write(body)
	digest := mac.Sum(nil)
	encoded := hex.EncodeToString(digest)
	if opts.Encoding == "base64" {
		encoded = base64.StdEncoding.EncodeToString(digest)
	}
	expected := []byte(opts.Prefix + encoded)
	for _, candidate := range strings.Split(value, ", ") {
		if hmac.Equal([]byte(strings.TrimSpace(candidate)), expected) {
			return true
		}
	}
	return false
}

func main() {
	var testCase struct {
		BodyB64 string            `json:"body_b64"`
		Headers map[string]string `json:"headers"`
		Secret  string            `json:"secret"`
		Options struct {
			GenericOptions
			Header string `json:"header"`
		} `json:"options"`
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
	name := testCase.Options.Header
	if name == "" {
		name = "X-Signature"
	}
	opts := testCase.Options.GenericOptions
	if VerifyGenericHmac(body, header.Get(name), header, testCase.Secret, opts, time.Now()) {
		fmt.Println("ok")
	} else {
		fmt.Println("bad")
	}
}
