// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configures StartRedis. The zero value is a password-less server.
type RedisOptions struct {
	Dir          string // state directory (required for StartRedis; NewRedisT uses t.TempDir)
	Password     string // requirepass for the default user
	User         string // an extra ACL user (all keys, all channels, no @dangerous commands)
	UserPassword string
	TLS          bool // also listen with TLS on TLSAddr (self-signed EC certificate)
	Logf         func(format string, args ...any)
}

// Redis is a private redis-server on loopback. Restart keeps the port, so clients
// see an outage and then the same server (empty: persistence is off).
type Redis struct {
	Addr    string // plain TCP, 127.0.0.1:port
	TLSAddr string // TLS, when RedisOptions.TLS
	CertPEM []byte

	opts RedisOptions
	mu   sync.Mutex
	proc *masterProc
}

// ErrNoRedis means redis-server was not found.
var ErrNoRedis = errors.New("testenv: redis-server not found; run scripts/install-test-deps.sh")

// StartRedis writes a config into opts.Dir and starts redis-server on random
// loopback ports, waiting until it answers PING.
func StartRedis(opts RedisOptions) (*Redis, error) {
	if opts.Dir == "" {
		return nil, errors.New("testenv: RedisOptions.Dir is required")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNoRedis
	}
	n := 1
	if opts.TLS {
		n = 2
	}
	ports, err := pickPorts(n)
	if err != nil {
		return nil, err
	}
	r := &Redis{opts: opts, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))}
	if opts.TLS {
		r.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		if r.CertPEM, err = ensureCert(filepath.Join(opts.Dir, "cert.pem"), filepath.Join(opts.Dir, "key.pem")); err != nil {
			return nil, err
		}
	}
	if err := r.writeConfig(ports); err != nil {
		return nil, err
	}
	return r, r.start()
}

func (r *Redis) writeConfig(ports []int) error {
	var b strings.Builder
	fmt.Fprintf(&b, "bind 127.0.0.1\nport %d\nprotected-mode no\ndaemonize no\ndir %s\nlogfile %s\n", ports[0], r.opts.Dir, filepath.Join(r.opts.Dir, "redis.log"))
	// No persistence: a restart is an empty Redis, the harshest case for the service.
	b.WriteString("save \"\"\nappendonly no\ndatabases 16\n")
	if r.opts.Password != "" {
		fmt.Fprintf(&b, "requirepass %s\n", r.opts.Password)
	}
	if r.opts.User != "" {
		fmt.Fprintf(&b, "user %s on >%s ~* &* +@all -@dangerous\n", r.opts.User, r.opts.UserPassword)
	}
	if r.opts.TLS {
		fmt.Fprintf(&b, "tls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\ntls-auth-clients no\n", ports[1],
			filepath.Join(r.opts.Dir, "cert.pem"), filepath.Join(r.opts.Dir, "key.pem"), filepath.Join(r.opts.Dir, "cert.pem"))
	}
	return os.WriteFile(filepath.Join(r.opts.Dir, "redis.conf"), []byte(b.String()), 0o600)
}

func (r *Redis) start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := exec.Command("redis-server", filepath.Join(r.opts.Dir, "redis.conf"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("testenv: start redis-server: %w", err)
	}
	mp := &masterProc{cmd: cmd, done: make(chan struct{})}
	go func() { mp.err = cmd.Wait(); close(mp.done) }()
	r.proc = mp
	t0 := time.Now()
	for time.Since(t0) < 10*time.Second {
		select {
		case <-mp.done:
			return fmt.Errorf("testenv: redis-server exited: %v\n%s", mp.err, r.Log())
		default:
		}
		if r.ping() {
			if r.opts.Logf != nil {
				r.opts.Logf("testenv: redis ready in %v (%s)", time.Since(t0).Round(time.Millisecond), r.Addr)
			}
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("testenv: redis-server not ready after 10 s\n%s", r.Log())
}

// ping speaks RESP directly, so the harness does not depend on a client library.
func (r *Redis) ping() bool {
	c, err := net.DialTimeout("tcp", r.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	cmd := "PING\r\n"
	if r.opts.Password != "" {
		cmd = fmt.Sprintf("AUTH %s\r\nPING\r\n", r.opts.Password)
	}
	if _, err := c.Write([]byte(cmd)); err != nil {
		return false
	}
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return false
		}
		if strings.HasPrefix(line, "+PONG") {
			return true
		}
		if strings.HasPrefix(line, "-") {
			return false
		}
	}
}

// Stop kills the server (it holds no data worth a graceful shutdown).
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	_ = r.proc.cmd.Process.Signal(syscall.SIGKILL)
	<-r.proc.done
	r.proc = nil
	return nil
}

// Restart stops and starts the server on the same ports (data is lost).
func (r *Redis) Restart() error {
	if err := r.Stop(); err != nil {
		return err
	}
	return r.start()
}

// Start starts a stopped server again on the same ports (empty).
func (r *Redis) Start() error { return r.start() }

// Pause freezes the server (SIGSTOP): connections stay open and new ones are
// accepted by the kernel, but nothing is answered, like a hung or overloaded
// Redis. Resume continues it with its data.
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return errors.New("testenv: redis-server is not running")
	}
	return r.proc.cmd.Process.Signal(sig)
}

// Log returns the server log.
func (r *Redis) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.opts.Dir, "redis.log"))
	return string(b)
}

// TLSConfig trusts the server's self-signed certificate.
func (r *Redis) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(r.CertPEM)
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// NewRedisT starts a Redis for the test in t.TempDir and stops it at cleanup. A
// missing redis-server fails the test (never skips).
func NewRedisT(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logf == nil {
		opts.Logf = t.Logf
	}
	r, err := StartRedis(opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("redis log:\n%s", tail(r.Log(), logTailBytes))
		}
		_ = r.Stop()
	})
	return r
}
