// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/emaillistener/emaillistener/internal/obs"
)

// serveAPI runs the API the way the service does: its own http.Server on a
// capped listener.
func serveAPI(t *testing.T, opts Options) (*fakeService, string) {
	svc, addr, _ := serveAPIWith(t, opts)
	return svc, addr
}

func serveAPIWith(t *testing.T, opts Options) (*fakeService, string, *API) {
	t.Helper()
	svc := &fakeService{}
	opts.Service = svc
	opts.Panics = obs.NewPanics(nil)
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := a.Server()
	go func() { _ = srv.Serve(a.Listener(ln)) }()
	t.Cleanup(func() { _ = srv.Close() })
	return svc, ln.Addr().String(), a
}

func request(t *testing.T, method, url, ctype, body string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A browser page can POST text/plain cross-site without a preflight, and a
// same-site page could forge the rest: both are refused before decoding.
func TestBrowserRequestsRefused(t *testing.T) {
	svc, addr := serveAPI(t, Options{})
	base := "http://" + addr
	cases := []struct {
		name, ctype string
		hdr         map[string]string
		want        int
	}{
		{"creatio", "application/json; charset=utf-8", nil, 200},
		{"text/plain form", "text/plain", nil, 415},
		{"form encoded", "application/x-www-form-urlencoded", nil, 415},
		{"no content type", "", nil, 415},
		{"cross-site fetch", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"foreign origin", "application/json", map[string]string{"Origin": "http://evil.example"}, 403},
		{"same-origin fetch", "application/json", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := request(t, "POST", base+"/api/listeners/close", c.ctype, `["a"]`, c.hdr)
			if code != c.want {
				t.Fatalf("status %d, want %d: %s", code, c.want, body)
			}
		})
	}
	if len(svc.closed) != 2 {
		t.Errorf("close ran %d times, want 2 (the allowed requests only)", len(svc.closed))
	}
}

func TestAllowedHosts(t *testing.T) {
	_, addr := serveAPI(t, Options{AllowedHosts: []string{"EmailListener", "el.crm.svc"}})
	base := "http://" + addr
	for host, want := range map[string]int{"emaillistener": 200, "el.crm.svc:10000": 200, "attacker.example": 421, addr: 421} {
		if code, body := request(t, "POST", base+"/api/listeners/close", "application/json", `[]`, map[string]string{"Host": host}); code != want {
			t.Errorf("Host %s: %d, want %d: %s", host, code, want, body)
		}
	}
	// Probes use the pod address.
	if code, _ := request(t, "GET", base+"/api/listeners/status", "", "", map[string]string{"Host": addr}); code != 200 {
		t.Errorf("status with the IP as Host: %d", code)
	}
}

// rawRequest writes head (and body, if any) on a new connection and returns
// the first response line the server sends, or "" when it closes without one.
func rawRequest(t *testing.T, addr, head string, within time.Duration) (net.Conn, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(within))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return c, strings.TrimSpace(line)
}

// A declared body over the limit is refused before it is read: a client
// waiting for "100 Continue" gets the 413 instead.
func TestExpectContinueTooLarge(t *testing.T) {
	_, addr := serveAPI(t, Options{MaxRequestBytes: 1 << 20})
	head := "POST /api/listeners/create HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
		"Content-Length: 67108864\r\nExpect: 100-continue\r\n\r\n"
	_, line := rawRequest(t, addr, head, 2*time.Second)
	if !strings.Contains(line, " 413 ") {
		t.Fatalf("first response line %q, want 413", line)
	}
}

// A client dripping its body is cut at the body timeout with 408, and the
// handler never sees a partial body.
func TestSlowBodyCut(t *testing.T) {
	svc, addr := serveAPI(t, Options{BodyTimeout: 300 * time.Millisecond})
	head := "POST /api/listeners/close HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n[\"a"
	start := time.Now()
	_, line := rawRequest(t, addr, head, 5*time.Second)
	if !strings.Contains(line, " 408 ") {
		t.Fatalf("first response line %q, want 408", line)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("cut after %v, want about the 300 ms body timeout", took)
	}
	if len(svc.closed) != 0 {
		t.Errorf("close ran with a partial body: %v", svc.closed)
	}
}

// Connections beyond MaxConnections serve only the health paths, and beyond
// the reserve are answered 503 and closed: descriptors stay bounded and the
// probes keep working.
func TestConnectionCap(t *testing.T) {
	const max = 3
	_, addr, a := serveAPIWith(t, Options{MaxConnections: max})
	open := func() int { return int(testutil.ToFloat64(a.conns)) }
	var held []net.Conn
	for range max {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	waitFor(t, func() bool { return open() == max }) // accepting is asynchronous

	// Over the cap: health answers, everything else is refused.
	tr := &http.Transport{DisableKeepAlives: true}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + addr + "/api/listeners/status")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("status over the cap: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = cl.Post("http://"+addr+"/api/listeners/close", "application/json", strings.NewReader(`[]`))
	if err != nil || resp.StatusCode != 503 {
		t.Fatalf("close over the cap: %v %v, want 503", resp, err)
	}
	resp.Body.Close()

	// Fill the reserve too: the next connection is answered 503 at once.
	for range reservedConnections {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	waitFor(t, func() bool { return open() == max+reservedConnections })
	_, line := rawRequest(t, addr, "GET /api/listeners/status HTTP/1.1\r\nHost: x\r\n\r\n", 2*time.Second)
	if !strings.Contains(line, " 503 ") {
		t.Fatalf("beyond the reserve: %q, want 503", line)
	}
	// Closing the held connections frees the slots.
	for _, c := range held {
		c.Close()
	}
	held = nil
	waitFor(t, func() bool {
		resp, err := cl.Post("http://"+addr+"/api/listeners/close", "application/json", strings.NewReader(`[]`))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// budgetFunc adapts a function to Budget.
type budgetFunc func(ctx context.Context, n int64) (func(), error)

func (f budgetFunc) Acquire(ctx context.Context, n int64) (func(), error) { return f(ctx, n) }

// A send takes its declared size from the message budget; when the budget
// stays spent the request is refused with 503 instead of piling up memory.
func TestSendTakesBudget(t *testing.T) {
	var asked int64
	_, addr := serveAPI(t, Options{SendBudget: budgetFunc(func(_ context.Context, n int64) (func(), error) {
		asked = n
		return nil, errors.New("spent")
	})})
	body := `{"Email":{},"Credentials":{"Id":"x"}}`
	code, out := request(t, "POST", "http://"+addr+"/apiv2/email/send", "application/json", body, nil)
	if code != 503 || asked != int64(len(body)) {
		t.Fatalf("send with the budget spent: %d %s, asked %d bytes (want %d)", code, out, asked, len(body))
	}
}

// Error texts never echo input at length.
func TestErrorsDoNotEchoInput(t *testing.T) {
	_, addr := serveAPI(t, Options{})
	long := strings.Repeat("x", 100_000)
	code, body := request(t, "POST", "http://"+addr+"/api/listeners/create", "application/json",
		fmt.Sprintf(`[{Id:"a",ServerTypeId:%q}]`, long), nil)
	if code != 400 || len(body) > 2*maxMessage {
		t.Fatalf("status %d, %d-byte answer", code, len(body))
	}
}
