// SPDX-License-Identifier: Apache-2.0

// Package certs loads the extra certificate authorities an operator asks the
// service to trust (for mail servers and for Redis).
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// ClientConfig is the TLS configuration for connecting to servers: TLS 1.2
// or later, the system roots plus caFile's certificates when caFile is set
// (setting names it in messages), and no verification at all when insecure
// (an operator's explicit, documented choice for self-signed servers).
func ClientConfig(setting, caFile string, insecure bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in, documented as unsafe
	if caFile != "" {
		pool, err := Pool(setting, caFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	return c, nil
}

// Pool returns the system roots plus the PEM certificates in file; the
// setting names the file's setting for messages.
func Pool(setting, file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificates found", setting, file)
	}
	return pool, nil
}
