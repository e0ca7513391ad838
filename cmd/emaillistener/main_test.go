// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestVersionAndBadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, func(string) string { return "" }, &out, &errb); code != 0 || strings.TrimSpace(out.String()) == "" {
		t.Fatalf("version: code %d out %q", code, out.String())
	}
	errb.Reset()
	env := map[string]string{"EL_LOG_FORMAT": "xml"}
	if code := run(nil, func(k string) string { return env[k] }, &out, &errb); code != 2 || !strings.Contains(errb.String(), "EL_LOG_FORMAT") {
		t.Fatalf("bad config: code %d stderr %q", code, errb.String())
	}
}

// TestServeAndSIGTERM runs the real binary: it answers on the configured
// address and exits 0 on SIGTERM.
func TestServeAndSIGTERM(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "emaillistener")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "serve", "--listen-addr", "127.0.0.1:0", "--log-format", "json")
	cmd.Env = append(os.Environ(), "EL_LOG_LEVEL=info")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	addr := ""
	for addr == "" && sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, `"addr":"`); i >= 0 && strings.Contains(line, "started") {
			addr = line[i+8:]
			addr = addr[:strings.IndexByte(addr, '"')]
		}
	}
	if addr == "" {
		t.Fatal("no start line with addr")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	resp, err := http.Get("http://" + addr + "/api/listeners/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not exit within 10 s of SIGTERM")
	}
}
