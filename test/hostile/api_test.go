// SPDX-License-Identifier: Apache-2.0

package hostile

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// repeatReader yields n bytes: head, then filler repeated, then tail.
type repeatReader struct {
	head, filler, tail []byte
	n, off             int64
}

func repeated(head, filler, tail string, n int64) *repeatReader {
	return &repeatReader{head: []byte(head), filler: []byte(filler), tail: []byte(tail), n: n}
}

func (r *repeatReader) Len() int { return int(r.n - r.off) }

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	i := 0
	for i < len(p) && r.off < r.n {
		switch {
		case r.off < int64(len(r.head)):
			p[i] = r.head[r.off]
		case r.off >= r.n-int64(len(r.tail)):
			p[i] = r.tail[r.off-(r.n-int64(len(r.tail)))]
		default:
			p[i] = r.filler[(r.off-int64(len(r.head)))%int64(len(r.filler))]
		}
		i++
		r.off++
	}
	return i, nil
}

// chunked hides the length, so the request goes out chunked.
type chunked struct{ io.Reader }

func ids(n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"%08x-0000-4000-8000-%012x"`, i, i)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// sendBody is a send command with one attachment of n bytes and an SMTP
// server that refuses connections.
func sendBody(n int) []byte {
	data := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0xA5}, n))
	return []byte(`{"Email":{"Id":"<big@example.com>","Subject":"big","Body":"see attached","Sender":"a@example.com",` +
		`"Recepients":["b@example.com"],"Attachments":[{"Id":"1","Name":"big.bin","Base64Data":"` + data + `"}]},` +
		`"Credentials":{"Id":"send-test","ServiceUrl":"127.0.0.1","Port":1,"UserName":"a","Password":"x","ServerTypeId":"` + imapServerType + `"}}`)
}

func (s *suite) requestBodies(t *testing.T) {
	longID := `["` + strings.Repeat("a", 8<<20) + `"]`
	cases := []struct {
		name, path string
		body       func() io.Reader
		want       int
		contains   string
	}{
		{"create: 63 MiB of {} announced", "/api/listeners/create",
			func() io.Reader { return repeated("[", "{},", "{}]", 63<<20) }, 413, ""},
		{"create: 63 MiB of {} chunked", "/api/listeners/create",
			func() io.Reader { return chunked{repeated("[", "{},", "{}]", 63<<20)} }, 413, ""},
		{"create: 1 MiB of {} (under the body limit)", "/api/listeners/create",
			func() io.Reader { return repeated("[", "{},", "{}]", 1<<20-10) }, 413, "elements"},
		{"create: 1 MiB FolderIds of empty strings", "/api/listeners/create",
			func() io.Reader { return repeated(`[{Id:"x",FolderIds:[`, `"",`, `""]}]`, 1<<20-10) }, 413, "values"},
		{"close: 100,000 ids", "/api/listeners/close", func() io.Reader { return bytes.NewReader(ids(100_000)) }, 200, ""},
		{"subscriptionsstate: 100,000 ids", "/api/listeners/subscriptionsstate", func() io.Reader { return bytes.NewReader(ids(100_000)) }, 200, ""},
		{"subscriptionsstate: 100,001 ids", "/api/listeners/subscriptionsstate", func() io.Reader { return bytes.NewReader(ids(100_001)) }, 413, ""},
		{"subscriptionsstate: 63 MiB of ids", "/api/listeners/subscriptionsstate",
			func() io.Reader { return repeated("[", `"00000000-0000-4000-8000-000000000000",`, `""]`, 63<<20) }, 413, ""},
		{"close: an 8 MiB id", "/api/listeners/close", func() io.Reader { return strings.NewReader(longID) }, 413, ""},
		{"close: an id with NUL", "/api/listeners/close", func() io.Reader { return strings.NewReader(`["a\u0000b"]`) }, 400, "non-printable"},
		{"availability: 8 MiB", "/api/availability/app", func() io.Reader { return repeated(`"http://`, "a", `"`, 8<<20) }, 413, ""},
		{"send: bad base64", "/apiv2/email/send", func() io.Reader {
			return strings.NewReader(`{"Email":{"Attachments":[{"Name":"a","Base64Data":"%%%"}]},"Credentials":{"Id":"x"}}`)
		}, 400, "Base64Data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, out := s.post(t, c.path, c.body())
			took := time.Since(start)
			if code != c.want || !strings.Contains(out, c.contains) {
				t.Fatalf("%d %.300s, want %d containing %q", code, out, c.want, c.contains)
			}
			if c.want >= 400 && len(out) > 2048 {
				t.Errorf("a %d-byte error answer", len(out))
			}
			t.Logf("FIGURE %s: %d in %v, service RSS %.1f MiB (peak so far %.1f)", c.name, code, took.Round(time.Millisecond), s.rssMiB(t), s.peakMiB(t))
			s.alive(t)
		})
	}

	t.Run("validate: a ServiceUrl of 900 KB is not echoed", func(t *testing.T) {
		body := s.credentials(mailbox{ID: "v1", User: "u", Addr: strings.Repeat("h", 900<<10) + ":143"})
		code, out := s.post(t, "/api/mailbox/validate", strings.NewReader(body))
		if code != 200 || !strings.Contains(out, `"IsValid":false`) || len(out) > 2048 {
			t.Fatalf("%d, %d bytes: %.300s", code, len(out), out)
		}
	})
	t.Run("availability: a long unreachable URL is not echoed", func(t *testing.T) {
		u, _ := json.Marshal("http://" + strings.Repeat("a", 2000) + ".invalid/")
		code, out := s.post(t, "/api/availability/app", bytes.NewReader(u))
		if code != 200 || len(out) > 2048 || out == "pong" {
			t.Fatalf("%d, %d bytes: %.300s", code, len(out), out)
		}
	})
	t.Run("send: 4 × 35 MB attachments at once", func(t *testing.T) {
		body := sendBody(35 << 20) // 47 MiB of JSON, under the 48 MiB limit
		before := s.rssMiB(t)
		var wg sync.WaitGroup
		codes := make([]int, 4)
		outs := make([]string, 4)
		start := time.Now()
		for i := range 4 {
			wg.Go(func() { codes[i], outs[i] = s.post(t, "/apiv2/email/send", bytes.NewReader(body)) })
		}
		wg.Wait()
		for i := range 4 {
			// The SMTP server refuses the connection: Creatio's answer is a
			// 200 with the reason as text.
			if codes[i] != 200 || !strings.Contains(strings.ToLower(outs[i]), "connect") {
				t.Errorf("send %d: %d %.200s", i, codes[i], outs[i])
			}
		}
		t.Logf("FIGURE 4 parallel sends of %d MiB each: %v, service RSS %.1f → %.1f MiB (peak so far %.1f)", len(body)>>20, time.Since(start).Round(time.Millisecond), before, s.rssMiB(t), s.peakMiB(t))
		s.alive(t)
	})
}

func (s *suite) browserRequests(t *testing.T) {
	create := "[" + s.credentials(mailbox{ID: "browser-1", User: "browser@example.com", Addr: s.dc.IMAPAddr}) + "]"
	for _, c := range []struct {
		name  string
		ctype string
		hdr   map[string]string
		want  int
	}{
		{"text/plain from a page", "text/plain", nil, 415},
		{"form post from a page", "application/x-www-form-urlencoded", nil, 415},
		{"fetch from another site", "application/json", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "http://intranet.example"}, 403},
		{"old browser with a foreign Origin", "application/json", map[string]string{"Origin": "http://intranet.example"}, 403},
	} {
		req, _ := http.NewRequest("POST", s.svc.Base+"/api/listeners/create", strings.NewReader(create))
		req.Header.Set("Content-Type", c.ctype)
		for k, v := range c.hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %d, want %d", c.name, resp.StatusCode, c.want)
		}
	}
	if st := s.states(t, []string{"browser-1"}); st["browser-1"] != "closed" {
		t.Fatalf("a browser request created a subscription: %v", st)
	}
}

// slowClients opens many connections that send their headers and then drip
// the body, while a probe checks the liveness path: the service cuts each
// at the body timeout, keeps its descriptors bounded and keeps answering.
func (s *suite) slowClients(t *testing.T) {
	n := s.sz.slowClients
	baseFDs, _ := s.svc.OpenFiles()
	var (
		cut, refused, other atomic.Int64
		maxCut              atomic.Int64 // ms from start to the server closing a dripper
	)
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, err := net.Dial("tcp", strings.TrimPrefix(s.svc.Base, "http://"))
			if err != nil {
				other.Add(1)
				return
			}
			defer c.Close()
			fmt.Fprintf(c, "POST /api/listeners/close HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000\r\n\r\n[")
			go func() { // drip a byte every 500 ms until the server hangs up
				t := time.NewTicker(500 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						if _, err := c.Write([]byte(`"`)); err != nil {
							return
						}
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			switch {
			case strings.Contains(line, " 408 "):
				cut.Add(1)
			case strings.Contains(line, " 503 "):
				refused.Add(1)
			default:
				other.Add(1)
				_ = i
			}
			ms := time.Since(start).Milliseconds()
			for {
				cur := maxCut.Load()
				if ms <= cur || maxCut.CompareAndSwap(cur, ms) {
					break
				}
			}
		})
	}
	// Probe while they drip: the health listener must stay alive as Kubernetes
	// judges it (livenessFailures in a row would restart the pod); the API
	// port answers as long as the flood leaves it a reserved slot.
	var probes, apiFailed, healthFailed, inARow, worstRun int
	var worst time.Duration
	maxFDs := 0
	for time.Since(start) < 3*time.Second {
		t0 := time.Now()
		if err := probe(s.svc.Health); err != nil {
			healthFailed++
			inARow++
			worstRun = max(worstRun, inARow)
		} else {
			inARow = 0
		}
		worst = max(worst, time.Since(t0))
		if probe(s.svc.Base) != nil {
			apiFailed++
		}
		probes++
		if fds, err := s.svc.OpenFiles(); err == nil {
			maxFDs = max(maxFDs, fds)
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	close(stop)
	flooded := time.Now()
	for {
		code, _ := s.post(t, "/api/listeners/close", strings.NewReader(`[]`))
		if code == 200 {
			break
		}
		if time.Since(flooded) > 30*time.Second {
			t.Fatalf("the API answers %d 30 s after the flood", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("FIGURE %d dripping clients: %d cut with 408 (last after %v), %d refused with 503 at the cap, %d other; "+
		"%d probes meanwhile: health listener %d failed (worst %v), API port %d failed; descriptors %d → max %d; API serving again %v after the flood",
		n, cut.Load(), time.Duration(maxCut.Load())*time.Millisecond, refused.Load(), other.Load(), probes, healthFailed,
		worst.Round(time.Millisecond), apiFailed, baseFDs, maxFDs, time.Since(flooded).Round(time.Millisecond))
	if other.Load() > 0 {
		t.Errorf("%d clients neither cut (408) nor refused (503)", other.Load())
	}
	if maxFDs > baseFDs+1024+32+64+64 {
		t.Errorf("descriptors grew to %d (from %d): not bounded by EL_MAX_CONNECTIONS", maxFDs, baseFDs)
	}
	if worstRun >= livenessFailures {
		t.Errorf("%d probes of the health listener in a row failed (%d of %d in all, worst %v): Kubernetes would restart the pod",
			worstRun, healthFailed, probes, worst)
	}
	if d := time.Duration(maxCut.Load()) * time.Millisecond; d > 10*time.Second {
		t.Errorf("the last dripping client was cut after %v (body timeout 2 s)", d)
	}
}
