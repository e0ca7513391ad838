// SPDX-License-Identifier: Apache-2.0

// Package license checks the licensing convention: the repository is
// Apache-2.0 (LICENSE), and every Go source file and script starts with its
// SPDX identifier, so that a file copied elsewhere still says under which
// terms.
package license

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const spdx = "SPDX-License-Identifier: Apache-2.0"

func TestLicenseFile(t *testing.T) {
	b, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Apache License") || !strings.Contains(string(b), "Version 2.0, January 2004") {
		t.Error("LICENSE is not the Apache License 2.0")
	}
}

func TestSPDXHeaders(t *testing.T) {
	out, err := exec.Command("git", "-C", "../..", "ls-files", "*.go", "*.sh", ".ci/run").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Fields(string(out))
	if len(files) < 100 {
		t.Fatalf("only %d files listed", len(files))
	}
	for _, f := range files {
		if strings.Contains(f, "/testdata/") {
			continue
		}
		if !headerHas(t, filepath.Join("../..", f)) {
			t.Errorf("%s: no %q in its first lines", f, spdx)
		}
	}
}

// headerHas reports whether the identifier is in the first two lines (a
// script's shebang comes first).
func headerHas(t *testing.T, path string) bool {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for i := 0; i < 2 && sc.Scan(); i++ {
		if strings.Contains(sc.Text(), spdx) {
			return true
		}
	}
	return false
}
