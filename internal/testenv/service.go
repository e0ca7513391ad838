// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildService compiles cmd/emaillistener into a temporary directory and
// returns the binary's path. root is the path of the repository root relative
// to the test's package directory (e.g. "../..").
func BuildService(t testing.TB, root string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "emaillistener")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/emaillistener")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the service: %v\n%s", err, out)
	}
	return bin
}

// Service is the service binary running as a separate process with JSON logs,
// so that tests see it exactly as operators do: its own memory, its own
// descriptors, killable.
type Service struct {
	Base   string // http://127.0.0.1:port
	Health string // http://127.0.0.1:port of EL_HEALTH_LISTEN_ADDR, if set
	cmd    *exec.Cmd
	exit   chan struct{}

	mu    sync.Mutex
	lines []string // log lines after the start line
}

// StartService runs bin serve with the environment env (KEY=value) on top of
// this process's, on a random loopback port, and waits for its start line.
// The process is killed when the test ends.
func StartService(t testing.TB, bin string, env ...string) *Service {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "EL_LISTEN_ADDR=127.0.0.1:0", "EL_LOG_FORMAT=json")
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &Service{cmd: cmd, exit: make(chan struct{})}
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var head []string
	for s.Base == "" && sc.Scan() {
		line := sc.Text()
		head = append(head, line)
		// Kept: what the service logs while it restores its mailboxes may
		// come before or after the start line.
		s.lines = append(s.lines, line)
		if strings.Contains(line, "started") {
			s.Base, s.Health = jsonAddr(line, "addr"), jsonAddr(line, "health_addr")
		}
	}
	if s.Base == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the service did not start:\n%s", strings.Join(head, "\n"))
	}
	go func() {
		for sc.Scan() {
			s.mu.Lock()
			s.lines = append(s.lines, sc.Text())
			s.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); close(s.exit) }()
	t.Cleanup(s.Kill)
	return s
}

// jsonAddr returns "http://" + the string value of key in a JSON log line, or
// "" when the line has no such key.
func jsonAddr(line, key string) string {
	i := strings.Index(line, `"`+key+`":"`)
	if i < 0 {
		return ""
	}
	v := line[i+len(key)+4:]
	return "http://" + v[:strings.IndexByte(v, '"')]
}

// PID is the service's process id.
func (s *Service) PID() int { return s.cmd.Process.Pid }

// Lines returns the log lines written so far, the start line included.
func (s *Service) Lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.lines...)
}

// Count returns how many log lines contain every one of subs.
func (s *Service) Count(subs ...string) int {
	n := 0
	for _, l := range s.Lines() {
		all := true
		for _, sub := range subs {
			all = all && strings.Contains(l, sub)
		}
		if all {
			n++
		}
	}
	return n
}

// Kill stops the process with SIGKILL and waits for it.
func (s *Service) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exit
}

// Stop sends SIGTERM and waits up to d for a clean exit, then kills.
func (s *Service) Stop(d time.Duration) {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exit:
	case <-time.After(d):
		s.Kill()
	}
}

// PeakRSS returns the process's peak resident set size so far (VmHWM).
func (s *Service) PeakRSS() (int64, error) { return procStatusBytes(s.PID(), "VmHWM:") }

// RSS returns the process's resident set size now (VmRSS).
func (s *Service) RSS() (int64, error) { return procStatusBytes(s.PID(), "VmRSS:") }

// OpenFiles returns the number of descriptors the process holds.
func (s *Service) OpenFiles() (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.PID()))
	return len(ents), err
}

// procStatusBytes reads a "Name:   123 kB" line of /proc/PID/status.
func procStatusBytes(pid int, field string) (int64, error) {
	if runtime.GOOS != "linux" {
		return 0, fmt.Errorf("/proc/%d/status: not on Linux", pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status %s %q: %w", pid, field, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}
