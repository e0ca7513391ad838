// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/testenv"
)

// procNode is the service binary running as a separate process.
type procNode struct {
	clusterNode
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string // JSON log lines after the start line
	exit  chan struct{}
}

func (p *procNode) logLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

func startProcNode(t *testing.T, bin, id string, r *testenv.Redis, dc *testenv.Dovecot, caFile, key string) *procNode {
	t.Helper()
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "EL_LISTEN_ADDR=127.0.0.1:0", "EL_LOG_FORMAT=json", "EL_NODE_ID="+id,
		"ExchangeListenerRedisHost="+r.Addr, "EL_SECRET_KEY="+key, "EL_IMAP_TLS_CA_FILE="+caFile, "EL_RECONNECT_MAX_DELAY=1s")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
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
		t.Fatalf("%s: no start line", id)
	}
	p := &procNode{clusterNode: clusterNode{id: id, base: "http://" + addr}, cmd: cmd, exit: make(chan struct{})}
	go func() {
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
		}
	}()
	go func() { _ = cmd.Wait(); close(p.exit) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.exit })
	return p
}

// procEnv is what the multi-process tests share: the service binary, one
// Redis, one Dovecot (every user's password "pw") and the Creatio stand-in.
type procEnv struct {
	bin     string
	r       *testenv.Redis
	dc      *testenv.Dovecot
	col     *testenv.Collector
	ca, key string
}

func newProcEnv(t *testing.T, scale bool) *procEnv {
	t.Helper()
	e := &procEnv{bin: filepath.Join(t.TempDir(), "emaillistener")}
	if out, err := exec.Command("go", "build", "-o", e.bin, "../../cmd/emaillistener").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	e.r = testenv.NewRedisT(t, testenv.RedisOptions{})
	e.dc = testenv.NewT(t, testenv.DovecotOptions{AnyPassword: "pw", Scale: scale, ExtraConf: "mail_fsync = never"})
	e.col = testenv.NewCollectorT(t)
	e.ca = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(e.ca, e.dc.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	e.key = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	return e
}

// start runs a service process as node id.
func (e *procEnv) start(t *testing.T, id string) *procNode {
	return startProcNode(t, e.bin, id, e.r, e.dc, e.ca, e.key)
}

// TestCrashFailover kills a node with SIGKILL (no hand-over): the survivor
// takes its mailboxes over once the dead node's heartbeat and leases expire,
// and mail that arrived meanwhile is delivered (at least once).
func TestCrashFailover(t *testing.T) {
	e := newProcEnv(t, false)
	dc, col := e.dc, e.col
	a, b := e.start(t, "node-a"), e.start(t, "node-b")

	const n = 30
	var ids []string
	host, port, _ := strings.Cut(dc.IMAPAddr, ":")
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("c4a5e000-0000-4000-8000-%012d", i)
		ids = append(ids, id)
		b.post(t, "/api/listeners/create", fmt.Sprintf(`[{Id:"%s",UserName:"u%d@example.com",Password:"pw",ServiceUrl:"%s",Port:%s,SecureOption:3,`+
			`ServerTypeId:"%s",BpmEndpoint:"%s",BpmUser:"Supervisor",SenderEmailAddress:"u%d@example.com",FolderIds:["INBOX"]}]`,
			id, i, host, port, imapServerType, col.Endpoint(), i))
	}
	holders := b.waitAllExist(t, ids, 60*time.Second)
	onA := 0
	for _, h := range holders {
		if h == "node-a" {
			onA++
		}
	}
	if onA == 0 {
		t.Fatalf("node-a holds nothing: %v", holders)
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exit
	killed := time.Now()
	// Mail arrives while node-a's mailboxes are orphaned.
	for i := 0; i < n; i++ {
		if _, err := dc.Append(fmt.Sprintf("u%d@example.com", i), "pw", "INBOX", simpleMail(fmt.Sprintf("crash-%d", i), fmt.Sprintf("crash-%d@example.com", i))); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		holders = b.waitAllExist(t, ids, 60*time.Second)
		all := true
		for _, h := range holders {
			if h != "node-b" {
				all = false
			}
		}
		if all {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node-b did not take over: %v", holders)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("failover: %d mailboxes of the killed node exist on the survivor %v after SIGKILL", onA, time.Since(killed).Round(100*time.Millisecond))
	deadline = time.Now().Add(30 * time.Second)
	for countSubject(col, "crash-") < n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	seen := map[string]bool{}
	for _, m := range col.Emails() {
		if s, _ := m.Data["Subject"].(string); strings.HasPrefix(s, "crash-") {
			seen[s] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("%d of %d emails sent during the failover arrived", len(seen), n)
	}
}
