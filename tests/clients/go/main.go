// One POST through an HTTP proxy with net/http, trusting one CA for the target's TLS (inside
// the tunnel); prints what the client got as one JSON line:
//
//	{"status": 403, "headers": {...}, "body": "..."} or {"error": "..."}
//
// The proxy is set on the Transport explicitly: Go never proxies loopback targets from the
// environment. Standard library only.
//
// Usage: post -proxy URL -url URL -ca FILE
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"time"
)

type answer struct {
	Status  int               `json:"status,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Error   string            `json:"error,omitempty"`
}

func main() {
	proxyURL := flag.String("proxy", "", "the proxy, http://host:port")
	target := flag.String("url", "", "the URL to POST to")
	caFile := flag.String("ca", "", "the CA to trust for the target")
	flag.Parse()
	out := json.NewEncoder(os.Stdout)
	if err := run(*proxyURL, *target, *caFile, out); err != nil {
		_ = out.Encode(answer{Error: err.Error()})
	}
}

func run(proxyURL, target, caFile string, out *json.Encoder) error {
	proxy, err := url.Parse(proxyURL)
	if err != nil {
		return fmt.Errorf("bad -proxy: %w", err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return fmt.Errorf("no certificate in %s", caFile)
	}
	client := &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			Proxy:           http.ProxyURL(proxy),
			TLSClientConfig: &tls.Config{RootCAs: roots},
		},
	}
	body := bytes.NewBufferString(`{"type":"invoice.paid"}`)
	response, err := client.Post(target, "application/json", body)
	if err != nil {
		return err
	}
	defer response.Body.Close()
	data, err := io.ReadAll(response.Body)
	if err != nil {
		return err
	}
	headers := map[string]string{}
	for name := range response.Header {
		headers[http.CanonicalHeaderKey(name)] = response.Header.Get(name)
	}
	return out.Encode(answer{Status: response.StatusCode, Headers: headers, Body: string(data)})
}
