// SPDX-License-Identifier: Apache-2.0

// Package compose checks compose.yaml without a Docker engine: compose-go (the
// loader Docker Compose itself uses) loads it with and without the demo
// profile, the services are wired as documented (ports, Redis password and
// database, dependencies, health checks), every local file it references
// exists, the demo's Dovecot configuration parses, and the demo's scripts —
// register, mail generator, Creatio stand-in — move a mail from a real Dovecot
// through the real service to the stand-in.
package compose

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

const root = "../.."

var python = "/usr/bin/python3"

func load(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	dir, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if env == nil {
		env = map[string]string{}
	}
	details := types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(dir, "compose.yaml"), Content: b}},
		Environment: env,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.ResolvePaths = true
		o.Profiles = profiles
	})
	if err != nil {
		t.Fatalf("load compose.yaml (profiles %v): %v", profiles, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %s: %v", name, err)
	}
	return s
}

func env(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

func TestDefaultProject(t *testing.T) {
	p := load(t, nil)
	if got := p.ServiceNames(); !slices.Equal(sorted(got), []string{"emaillistener", "redis"}) {
		t.Fatalf("services without a profile: %v, want emaillistener and redis", got)
	}
	el := service(t, p, "emaillistener")
	if el.Build == nil || el.Build.Context != mustAbs(t, root) || el.Build.Dockerfile != "Dockerfile" {
		t.Errorf("build %+v, want the repository's Dockerfile", el.Build)
	}
	if el.PullPolicy != types.PullPolicyBuild {
		t.Errorf("pull_policy %q, want build (never pull a look-alike image)", el.PullPolicy)
	}
	// The original publishes 10000:80; this image listens on 10000.
	if len(el.Ports) != 1 || el.Ports[0].Target != 10000 || el.Ports[0].Published != "10000" || el.Ports[0].Protocol != "tcp" {
		t.Errorf("ports %+v, want 10000:10000/tcp", el.Ports)
	}
	if len(el.Expose) > 0 {
		t.Errorf("expose %v", el.Expose)
	}

	u, err := url.Parse(env(el, "EL_REDIS_URL"))
	if err != nil || u.Scheme != "redis" || u.Host != "redis:6379" || u.Path != "/1" {
		t.Errorf("EL_REDIS_URL %q, want redis://redis:6379/1 (dedicated database 1)", env(el, "EL_REDIS_URL"))
	}
	redis := service(t, p, "redis")
	pw := env(el, "ExchangeListenerRedisPassword")
	if pw == "" || !slices.Contains(redis.Command, pw) || slices.Index(redis.Command, pw) != slices.Index(redis.Command, "--requirepass")+1 {
		t.Errorf("service password %q not Redis's --requirepass (%v)", pw, redis.Command)
	}
	if env(redis, "REDISCLI_AUTH") != pw {
		t.Error("the Redis healthcheck does not use the password")
	}
	if env(el, "EL_SECRET_KEY") == "" {
		t.Error("no EL_SECRET_KEY: the service refuses to start against Redis without one")
	}
	if d, ok := el.DependsOn["redis"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("emaillistener depends_on %+v, want redis healthy", el.DependsOn)
	}
	if redis.HealthCheck == nil || !slices.Contains(redis.HealthCheck.Test, "ping") {
		t.Errorf("redis healthcheck %+v", redis.HealthCheck)
	}
	if len(redis.Ports) != 0 {
		t.Errorf("redis is published: %+v", redis.Ports)
	}
	if !el.ReadOnly || !slices.Contains(el.CapDrop, "ALL") {
		t.Error("emaillistener should run read-only without capabilities")
	}
	if _, ok := p.Volumes["redis-data"]; !ok {
		t.Error("no redis-data volume")
	}
	checkLocalFiles(t, p)
}

// TestInterpolation: the documented variables change what they say.
func TestInterpolation(t *testing.T) {
	p := load(t, map[string]string{"REDIS_PASSWORD": "s3cr:t@/x", "EL_HOST_PORT": "8080", "EL_IMAGE": "emaillistener:1.0", "EL_PULL_POLICY": "missing"})
	el, redis := service(t, p, "emaillistener"), service(t, p, "redis")
	if env(el, "ExchangeListenerRedisPassword") != "s3cr:t@/x" || !slices.Contains(redis.Command, "s3cr:t@/x") || env(redis, "REDISCLI_AUTH") != "s3cr:t@/x" {
		t.Error("REDIS_PASSWORD does not reach both sides")
	}
	if el.Ports[0].Published != "8080" || el.Ports[0].Target != 10000 {
		t.Errorf("EL_HOST_PORT: %+v", el.Ports)
	}
	if el.Image != "emaillistener:1.0" || el.PullPolicy != types.PullPolicyMissing {
		t.Errorf("EL_IMAGE/EL_PULL_POLICY: %q %q", el.Image, el.PullPolicy)
	}
}

func TestDemoProfile(t *testing.T) {
	p := load(t, nil, "demo")
	want := []string{"creatio-stub", "dovecot", "emaillistener", "mailgen", "redis", "register"}
	if got := sorted(p.ServiceNames()); !slices.Equal(got, want) {
		t.Fatalf("demo services %v, want %v", got, want)
	}
	for _, n := range []string{"creatio-stub", "dovecot", "mailgen", "register"} {
		if s := service(t, p, n); !slices.Equal(s.Profiles, []string{"demo"}) {
			t.Errorf("%s profiles %v, want [demo]", n, s.Profiles)
		}
	}
	dovecot := service(t, p, "dovecot")
	if dovecot.HealthCheck == nil || dovecot.Build == nil {
		t.Errorf("dovecot: healthcheck %+v build %+v", dovecot.HealthCheck, dovecot.Build)
	}
	if len(dovecot.Ports) != 1 || dovecot.Ports[0].HostIP != "127.0.0.1" || dovecot.Ports[0].Target != 143 {
		t.Errorf("dovecot ports %+v, want 127.0.0.1:1143:143 only", dovecot.Ports)
	}
	reg := service(t, p, "register")
	for dep, cond := range map[string]string{"emaillistener": types.ServiceConditionStarted, "dovecot": types.ServiceConditionHealthy, "creatio-stub": types.ServiceConditionHealthy} {
		if d, ok := reg.DependsOn[dep]; !ok || d.Condition != cond {
			t.Errorf("register depends_on %s: %+v, want %s", dep, d, cond)
		}
	}
	if u, err := url.Parse(env(reg, "EL_URL")); err != nil || u.Host != "emaillistener:10000" {
		t.Errorf("register EL_URL %q", env(reg, "EL_URL"))
	}
	bpm := env(reg, "BPM_ENDPOINT")
	if u, err := url.Parse(bpm); err != nil || u.Hostname() != "creatio-stub" || !strings.Contains(u.Path, "/ExchangeListenerService.svc/") {
		t.Errorf("BPM_ENDPOINT %q", bpm)
	}
	stub := service(t, p, "creatio-stub")
	if u, _ := url.Parse(bpm); u == nil || u.Port() != env(stub, "PORT") {
		t.Errorf("BPM_ENDPOINT %q does not reach the stub's PORT %q", bpm, env(stub, "PORT"))
	}
	gen := service(t, p, "mailgen")
	if d, ok := gen.DependsOn["register"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
		t.Errorf("mailgen must start after the mailbox is registered: %+v", gen.DependsOn)
	}
	for _, k := range []string{"IMAP_HOST", "IMAP_USER", "IMAP_PASSWORD", "MAILBOX_ID"} {
		if env(gen, k) != env(reg, k) || env(gen, k) == "" {
			t.Errorf("mailgen and register disagree on %s", k)
		}
	}
	if env(reg, "IMAP_HOST") != "dovecot" || env(reg, "IMAP_PORT") != "143" {
		t.Errorf("register IMAP %s:%s", env(reg, "IMAP_HOST"), env(reg, "IMAP_PORT"))
	}
	users, err := os.ReadFile(filepath.Join(root, "deploy/compose/dovecot/users"))
	if err != nil || !strings.HasPrefix(string(users), env(reg, "IMAP_USER")+":{PLAIN}"+env(reg, "IMAP_PASSWORD")+"\n") {
		t.Errorf("the Dovecot users file does not hold %s: %q %v", env(reg, "IMAP_USER"), users, err)
	}
	checkLocalFiles(t, p)
}

// checkLocalFiles: build contexts (with their Dockerfile) and bind mounts exist.
func checkLocalFiles(t *testing.T, p *types.Project) {
	t.Helper()
	for _, s := range p.Services {
		if s.Build != nil {
			df := s.Build.Dockerfile
			if !filepath.IsAbs(df) {
				df = filepath.Join(s.Build.Context, df)
			}
			if _, err := os.Stat(df); err != nil {
				t.Errorf("%s: build: %v", s.Name, err)
			}
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s: bind mount: %v", s.Name, err)
			}
			if !v.ReadOnly {
				t.Errorf("%s: bind mount %s is writable", s.Name, v.Source)
			}
		}
	}
}

func TestDovecotConfig(t *testing.T) {
	doveconf, err := exec.LookPath("doveconf")
	if err != nil {
		t.Skip("doveconf not installed (scripts/install-test-deps.sh installs Dovecot)")
	}
	out, err := exec.Command(doveconf, "-n", "-c", filepath.Join(root, "deploy/compose/dovecot/dovecot.conf")).CombinedOutput()
	if err != nil {
		t.Fatalf("doveconf: %v\n%s", err, out)
	}
	for _, want := range []string{"protocols = imap", "passdb {", "/etc/dovecot/users", "ssl = no"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("doveconf -n has no %q", want)
		}
	}
}

func TestScriptsCompile(t *testing.T) {
	scripts, _ := filepath.Glob(filepath.Join(root, "deploy/compose/*.py"))
	if len(scripts) != 3 {
		t.Fatalf("scripts %v, want register, mailgen, creatio-stub", scripts)
	}
	// compile() without writing __pycache__ into the tree.
	args := append([]string{"-c", "import sys\nfor p in sys.argv[1:]: compile(open(p, 'rb').read(), p, 'exec')"}, scripts...)
	if out, err := exec.Command(python, args...).CombinedOutput(); err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
}

// TestDemoFlow runs the demo profile's pieces without containers: a private
// Dovecot with the demo user, the service, the Creatio stand-in, register.py
// and mailgen.py with the environment compose.yaml gives them (hosts and ports
// rewritten to loopback), and waits for the stand-in to print the mails.
func TestDemoFlow(t *testing.T) {
	p := load(t, nil, "demo")
	reg, gen := service(t, p, "register"), service(t, p, "mailgen")
	user, pass := env(reg, "IMAP_USER"), env(reg, "IMAP_PASSWORD")
	d := testenv.NewT(t, testenv.DovecotOptions{Users: map[string]string{user: pass}})
	svc := testenv.StartService(t, testenv.BuildService(t, root))

	stubPort := freePort(t)
	stubOut := startScript(t, "creatio-stub.py", "PORT="+stubPort)
	bpm, _ := url.Parse(env(reg, "BPM_ENDPOINT"))
	bpm.Host = "127.0.0.1:" + stubPort
	imapHost, imapPort, _ := net.SplitHostPort(d.IMAPAddr)
	overrides := map[string]string{"EL_URL": svc.Base, "IMAP_HOST": imapHost, "IMAP_PORT": imapPort, "BPM_ENDPOINT": bpm.String()}
	waitFor(t, stubOut, "listening", 5*time.Second)

	regEnv := scriptEnv(reg, overrides)
	cmd := exec.Command(python, filepath.Join(root, "deploy/compose/register.py"))
	cmd.Env = append(regEnv, "REGISTER_TIMEOUT=20")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "is subscribed") {
		t.Fatalf("register.py: %v\n%s", err, out)
	}
	cmd = exec.Command(python, filepath.Join(root, "deploy/compose/mailgen.py"))
	cmd.Env = append(scriptEnv(gen, overrides), "MAIL_INTERVAL=0.2", "MAIL_COUNT=2")
	if out, err := cmd.CombinedOutput(); err != nil || strings.Count(string(out), "appended demo message") != 2 {
		t.Fatalf("mailgen.py: %v\n%s", err, out)
	}
	waitFor(t, stubOut, "'Demo message #2' from", 20*time.Second)
	if !stubOut.has("'Demo message #1'") {
		t.Errorf("the stand-in printed no message #1:\n%s", stubOut.String())
	}
}

func scriptEnv(s types.ServiceConfig, overrides map[string]string) []string {
	var e []string
	for k, v := range s.Environment {
		if o, ok := overrides[k]; ok {
			e = append(e, k+"="+o)
		} else if v != nil {
			e = append(e, k+"="+*v)
		}
	}
	return e
}

type lines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lines) add(s string) { l.mu.Lock(); l.b.WriteString(s + "\n"); l.mu.Unlock() }
func (l *lines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}
func (l *lines) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

func startScript(t *testing.T, name string, env ...string) *lines {
	t.Helper()
	cmd := exec.Command(python, filepath.Join(root, "deploy/compose", name))
	cmd.Env = env
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	l := &lines{}
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			l.add(sc.Text())
		}
		close(done)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-done; cmd.Wait() })
	return l
}

func waitFor(t *testing.T, l *lines, s string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !l.has(s) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v; output:\n%s", s, d, l.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
