// SPDX-License-Identifier: Apache-2.0

package certs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

func TestPool(t *testing.T) {
	dir := t.TempDir()
	pem, err := testenv.SelfSignedPEM()
	if err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := Pool("EL_X", good); err != nil || p == nil {
		t.Fatalf("Pool(good) = %v, %v", p, err)
	}
	bad := filepath.Join(dir, "bad.pem")
	_ = os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, f := range []string{bad, filepath.Join(dir, "missing.pem")} {
		if _, err := Pool("EL_X", f); err == nil || !strings.Contains(err.Error(), "EL_X") {
			t.Errorf("Pool(%s) = %v, want an error naming the setting", f, err)
		}
	}
}
