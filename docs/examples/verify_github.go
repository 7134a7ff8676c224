// Verify a GitHub-style X-Hub-Signature-256 header signed by hookwall.
// Go standard library only. Run as a program: reads {"body_b64", "headers", "secret"} JSON
// on stdin, prints ok or bad.
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
	"strings"
)

// VerifyGitHub reports whether any X-Hub-Signature-256 value matches.
// body: the raw request bytes (io.ReadAll(r.Body)), never re-serialised JSON.
// During key rotation hookwall sends one X-Hub-Signature-256 line per key: all are checked
// (and values that a proxy joined with ", " are split again).
func VerifyGitHub(body []byte, header http.Header, secret string) bool {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	expected := []byte("sha256=" + hex.EncodeToString(mac.Sum(nil)))
	for _, line := range header.Values("X-Hub-Signature-256") {
		for _, candidate := range strings.Split(line, ",") {
			if hmac.Equal([]byte(strings.TrimSpace(candidate)), expected) {
				return true
			}
		}
	}
	return false
}

func main() {
	var testCase struct {
		BodyB64 string                     `json:"body_b64"`
		Headers map[string]json.RawMessage `json:"headers"` // a string, or a list of lines
		Secret  string                     `json:"secret"`
	}
	if err := json.NewDecoder(os.Stdin).Decode(&testCase); err != nil {
		panic(err)
	}
	body, err := base64.StdEncoding.DecodeString(testCase.BodyB64)
	if err != nil {
		panic(err)
	}
	header := http.Header{}
	for name, raw := range testCase.Headers {
		var lines []string
		if err := json.Unmarshal(raw, &lines); err != nil {
			var line string
			if err := json.Unmarshal(raw, &line); err != nil {
				panic(err)
			}
			lines = []string{line}
		}
		for _, line := range lines {
			header.Add(name, line)
		}
	}
	if VerifyGitHub(body, header, testCase.Secret) {
		fmt.Println("ok")
	} else {
		fmt.Println("bad")
	}
}
