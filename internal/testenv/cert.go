// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"
)

// certValidity is long enough that a checked-in fixture or a long benchmark never sees
// the certificate expire.
const certValidity = 10 * 365 * 24 * time.Hour

// ensureCert writes DIR/cert.pem and DIR/key.pem unless they exist (Restart keeps the
// certificate, so clients that pinned CertPEM keep working) and returns the certificate
// PEM. EC P-256 generated in Go: no openssl needed, and ~10x faster than RSA-2048
// keygen, which took 150-600 ms per start.
func ensureCert(certFile, keyFile string) ([]byte, error) {
	if certPEM, err := os.ReadFile(certFile); err == nil {
		if _, err := os.Stat(keyFile); err == nil {
			return certPEM, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("testenv: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("testenv: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"emaillistener testenv"}},
		NotBefore:    now.Add(-time.Hour), // tolerate clock skew between processes
		NotAfter:     now.Add(certValidity),
		// Self-signed and marked as a CA so that it can be put into a tls.Config's
		// RootCAs as is.
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("testenv: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("testenv: marshal key: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	// Dovecot reads both through "<file" config values, i.e. as the master (root or the
	// invoking user), so the key can stay private.
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("testenv: write key: %w", err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("testenv: write certificate: %w", err)
	}
	return certPEM, nil
}

// SelfSignedPEM returns a fresh self-signed certificate for localhost and
// 127.0.0.1 (a CA certificate), PEM-encoded.
func SelfSignedPEM() ([]byte, error) {
	dir, err := os.MkdirTemp("", "testenv-cert-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	return ensureCert(dir+"/cert.pem", dir+"/key.pem")
}
