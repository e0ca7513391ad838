// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Poll intervals for things the kernel gives us no notification for (another process
// becoming ready, a process exiting that is not our child).
const (
	readyPollInterval = 10 * time.Millisecond
	procPollInterval  = 10 * time.Millisecond
	greetingTimeout   = 2 * time.Second
)

// pickPorts returns n distinct free loopback ports. All listeners stay open until every
// port is chosen, so the kernel cannot hand out the same port twice. Another process may
// still grab a port before Dovecot binds it; start retries with new ports when Dovecot
// reports "Address already in use".
func pickPorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	lns := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testenv: pick free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// portInUse reports whether something already accepts connections on addr. A leftover
// instance on our port once passed another script's readiness check, so a busy port is
// refused up front.
func portInUse(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// checkGreeting connects to addr and reports whether the first line is an IMAP OK
// greeting carrying want. Dovecot accepts connections before its auth process is up and
// only then sends the greeting, so the greeting, not the open port, is the readiness
// signal.
func checkGreeting(addr, want string) bool {
	line, ok := firstLine(addr, "")
	return ok && strings.HasPrefix(line, "* OK ") && strings.Contains(line, want)
}

// firstLine connects to addr, reads the server's first line within
// greetingTimeout, sends bye (if any) and hangs up.
func firstLine(addr, bye string) (string, bool) {
	c, err := net.DialTimeout("tcp", addr, greetingTimeout)
	if err != nil {
		return "", false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(greetingTimeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", false
	}
	if bye != "" {
		_, _ = c.Write([]byte(bye))
	}
	return line, true
}

// instProc is one live process of an instance.
type instProc struct {
	pid   int
	title string // argv[0]: Dovecot sets it to "dovecot-<instance_name>/<service>"
}

// instanceProcs lists the live processes of the instance in dir. The master and most
// services have their working directory below dir (base_dir DIR/run; login processes
// chroot below it). imap and lmtp processes do not: they
// chdir to "/" or the user's home, so they are recognized by their process title, which
// carries the instance_name unique to this Dovecot value. They matter most: an imap
// process serving a connected client survives the master's shutdown and keeps the log
// and stats processes alive with it. Zombies are skipped: in containers PID 1 often
// does not reap, and a zombie holds no ports (gotcha 4).
func instanceProcs(dir, instance string) []instProc {
	base := filepath.Clean(dir)
	prefix := "dovecot-" + instance + "/"
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var procs []instProc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		title := argv0(pid)
		if !strings.HasPrefix(title, prefix) {
			cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
			if err != nil || (cwd != base && !strings.HasPrefix(cwd, base+"/")) {
				continue
			}
		}
		if isZombie(pid) {
			continue
		}
		procs = append(procs, instProc{pid: pid, title: title})
	}
	return procs
}

func pidsOf(procs []instProc) []int {
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.pid
	}
	return pids
}

// argv0 returns the first NUL-terminated word of /proc/PID/cmdline.
func argv0(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return ""
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// isZombie reads the state field of /proc/PID/stat. The comm field may contain spaces
// and parentheses, so the state is the first field after the last ')'.
func isZombie(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	return b[i+2] == 'Z'
}

// removeStalePID deletes DIR/run/master.pid when no process of the instance is alive.
// Dovecot refuses to start while the PID in that file is alive, and a zombie or a
// recycled PID counts as alive.
func removeStalePID(dir, instance string) error {
	if _, err := os.Stat(masterPIDPath(dir)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if procs := instanceProcs(dir, instance); len(procs) > 0 {
		return fmt.Errorf("testenv: dovecot processes %v of %s are still running", pidsOf(procs), dir)
	}
	if err := os.Remove(masterPIDPath(dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("testenv: remove stale master.pid: %w", err)
	}
	return nil
}

// raiseNoFile makes child processes inherit the hard RLIMIT_NOFILE. Go raises its own
// soft limit at start-up but restores the original one in children unless the program
// calls Setrlimit itself. As root Dovecot raises its limit on its own; as non-root it
// stays at the soft limit (often 1024) and at ~1000 connections the stats service runs
// out of fds and every further login hangs.
func raiseNoFile() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	lim.Cur = lim.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
}

// inotifyInstances returns fs.inotify.max_user_instances, or 0 if unreadable.
func inotifyInstances() int {
	b, err := os.ReadFile("/proc/sys/fs/inotify/max_user_instances")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// readTail returns up to limit bytes of the end of the file, from offset on.
func readTail(path string, offset int64, limit int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	start := max(offset, st.Size()-int64(limit))
	if start < 0 || start > st.Size() {
		start = 0
	}
	buf := make([]byte, st.Size()-start)
	n, _ := f.ReadAt(buf, start)
	return string(buf[:n])
}

// fileSize returns the size of path, 0 if it does not exist.
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}
