// Package certs loads the extra certificate authorities an operator asks the
// service to trust (for mail servers and for Redis).
package certs

import (
	"crypto/x509"
	"fmt"
	"os"
)

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
