// Verify a Stripe-Signature header signed by hookwall (the official stripe-go package's
// webhook.ConstructEvent does the same). Go standard library only. Run as a program: reads
// {"body_b64", "headers", "secret"} JSON on stdin, prints ok or bad.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const toleranceSeconds = 5 * 60

// VerifyStripe reports whether any v1 signature matches.
// body: the raw request bytes (io.ReadAll(r.Body)), never re-serialised JSON.
// secret: the whsec_... string as is (it is NOT base64-decoded in this scheme).
func VerifyStripe(body []byte, header http.Header, secret string, now time.Time) bool {
	timestamp := ""
	var signatures []string
	for _, item := range strings.Split(header.Get("Stripe-Signature"), ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(item), "=")
		switch key {
		case "t":
			timestamp = value
		case "v1":
			signatures = append(signatures, value)
		}
	}
	ts, err := strconv.ParseUint(timestamp, 10, 63)
	if err != nil {
		return false
	}
	if age := now.Unix() - int64(ts); age > toleranceSeconds || age < -toleranceSeconds {
		return false // too old (a replay?) or too far in the future
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(timestamp + "."))
	mac.Write(body)
	expected := []byte(hex.EncodeToString(mac.Sum(nil)))
	for _, signature := range signatures {
		if hmac.Equal([]byte(signature), expected) {
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
	if VerifyStripe(body, header, testCase.Secret, time.Now()) {
		fmt.Println("ok")
	} else {
		fmt.Println("bad")
	}
}
