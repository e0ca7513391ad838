// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"testing"
)

// chunkConn serves src in reads of at most chunk bytes, as TCP may split it.
type chunkConn struct {
	net.Conn
	src   io.Reader
	chunk int
	read  int64 // bytes served
}

func (c *chunkConn) Read(p []byte) (int, error) {
	n, err := c.src.Read(p[:min(len(p), c.chunk)])
	c.read += int64(n)
	return n, err
}

// readAll reads everything through g with Read buffers of size bufSize.
func readAll(g *guard, bufSize int) ([]byte, error) {
	var out []byte
	buf := make([]byte, bufSize)
	for {
		n, err := g.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

const fetchResponse = "* 1 FETCH (UID 7 BODY[] {12}\r\nSubject: x\r\n UID 7)\r\n" +
	"* 2 FETCH (UID 8 BINARY[] ~{3}\r\n\x00\x01\x02)\r\n" +
	"* LIST () \"/\" {5}\n{3}\r\n)\r\n" +
	"* OK [ALERT] {7+}\r\n" +
	"* OK text with {1 and {22} inside\r\n" +
	"T1 OK done\r\n"

// TestGuardFraming: an honest stream comes through unchanged however the
// network splits it and whatever buffers the reader uses, including literals
// whose content looks like a literal header, lone LF and literal8.
func TestGuardFraming(t *testing.T) {
	in := fetchResponse
	for chunk := 1; chunk <= len(in); chunk++ {
		for _, bufSize := range []int{1, 7, minRead, 4096} {
			g := newGuard(&chunkConn{src: strings.NewReader(in), chunk: chunk}, commandLimits(1<<20))
			out, err := readAll(g, bufSize)
			if err != nil || string(out) != in {
				t.Fatalf("chunk %d, buffer %d: got %q, %v", chunk, bufSize, out, err)
			}
		}
	}
	// The 12-byte literal held "Subject: x\r\n" and the {3} inside the LIST
	// literal was content: the guard followed the framing, not the bytes.
	g := newGuard(&chunkConn{src: strings.NewReader(in), chunk: 5}, &limits{line: 40, literal: 12, total: 1 << 20})
	if _, err := readAll(g, 4096); err != nil {
		t.Fatalf("tight limits that fit: %v", err)
	}
}

// TestGuardCut: a message literal over its limit is replaced by NIL (or cut
// to a prefix), the rest of the response goes on, under any split.
func TestGuardCut(t *testing.T) {
	body := strings.Repeat("x", 100)
	in := "* 1 FETCH (UID 1 BODY[] {100}\r\n" + body + " INTERNALDATE \"x\")\r\n" +
		"* 2 FETCH (UID 2 BODY[] {4}\r\nabcd)\r\nT1 OK done\r\n"
	cases := []struct {
		lim  limits
		want string
	}{
		{limits{line: 1 << 10, literal: 10, total: 1 << 20, cut: cutNil},
			"* 1 FETCH (UID 1 BODY[] NIL INTERNALDATE \"x\")\r\n* 2 FETCH (UID 2 BODY[] {4}\r\nabcd)\r\nT1 OK done\r\n"},
		{limits{line: 1 << 10, literal: 10, total: 1 << 20, cut: cutPrefix},
			"* 1 FETCH (UID 1 BODY[] {10}\r\nxxxxxxxxxx INTERNALDATE \"x\")\r\n* 2 FETCH (UID 2 BODY[] {4}\r\nabcd)\r\nT1 OK done\r\n"},
		// The budget, not the literal limit, cuts the second message.
		{limits{line: 1 << 10, literal: 200, total: 400, reserve: 240, cut: cutNil},
			"* 1 FETCH (UID 1 BODY[] {100}\r\n" + body + " INTERNALDATE \"x\")\r\n* 2 FETCH (UID 2 BODY[] NIL)\r\nT1 OK done\r\n"},
	}
	for i, c := range cases {
		for chunk := 1; chunk <= len(in); chunk++ {
			g := newGuard(&chunkConn{src: strings.NewReader(in), chunk: chunk}, &c.lim)
			out, err := readAll(g, 4096)
			if err != nil || string(out) != c.want {
				t.Fatalf("case %d, chunk %d: got %q, %v", i, chunk, out, err)
			}
		}
	}
}

// TestGuardDrain: the tail of a large cut literal is drained in big reads
// that stop exactly at its end, whatever the network's split.
func TestGuardDrain(t *testing.T) {
	body := strings.Repeat("y", 3*drainBuf+123)
	in := "* 1 FETCH (UID 1 BODY[] {" + strconv.Itoa(len(body)) + "}\r\n" + body + ")\r\nT1 OK done\r\n"
	want := "* 1 FETCH (UID 1 BODY[] NIL)\r\nT1 OK done\r\n"
	for _, chunk := range []int{1000, 4096, drainBuf - 1, drainBuf, drainBuf + 1, 1 << 20} {
		g := newGuard(&chunkConn{src: strings.NewReader(in), chunk: chunk}, &limits{line: 1 << 10, literal: 10, total: 1 << 20, cut: cutNil})
		out, err := readAll(g, 4096)
		if err != nil || string(out) != want {
			t.Fatalf("chunk %d: got %q, %v", chunk, out, err)
		}
	}
}

// endless repeats prefix forever after head: what a hostile server sends.
type endless struct {
	head []byte
	fill byte
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.head)
	e.head = e.head[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	return len(p), nil
}

// endlessLines repeats line forever.
type endlessLines struct {
	line string
	off  int
}

func (e *endlessLines) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = e.line[e.off]
		e.off = (e.off + 1) % len(e.line)
	}
	return len(p), nil
}

// TestGuardViolations: each limit fails the read with its own message, having
// read about the limit and no more, and the failure sticks.
func TestGuardViolations(t *testing.T) {
	cases := []struct {
		name    string
		src     io.Reader
		lim     *limits
		want    string
		maxRead int64
	}{
		{"huge literal", &endless{head: []byte("* LIST () \"/\" {1073741824}\r\n"), fill: 'a'}, commandLimits(listBudget),
			"imap: the server sent a 1073741824-byte literal where at most 65536 are allowed", 4096},
		{"literal over the budget", &endless{head: []byte("* LIST () \"/\" {60000}\r\n"), fill: 'a'}, commandLimits(1000),
			"imap: the server sent a 60000-byte literal where at most 977 are allowed", 4096},
		{"endless line", &endless{head: []byte("* LIST () \"/\" "), fill: 'a'}, commandLimits(listBudget),
			"imap: the server sent a response line longer than 65536 bytes", maxLineBytes + 4096},
		{"endless untagged", &endlessLines{line: "* LIST () \"/\" folder\r\n"}, commandLimits(listBudget),
			"imap: the server sent more than 8388608 bytes in response to one command", listBudget + 4096},
		{"endless search line", &endless{head: []byte("* SEARCH"), fill: '1'}, searchLimits(),
			"imap: the server sent a response line longer than 16777216 bytes", maxSearchLineBytes + 4096},
		{"20-digit size is line", &endless{head: []byte("* LIST () \"/\" {99999999999999999999}\r\n"), fill: 'a'}, commandLimits(listBudget),
			"imap: the server sent a response line longer than 65536 bytes", maxLineBytes + 4096},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := &chunkConn{src: c.src, chunk: 4096}
			g := newGuard(conn, c.lim)
			_, err := readAll(g, 4096)
			var le *limitError
			if !errors.As(err, &le) || err.Error() != c.want {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if conn.read > c.maxRead {
				t.Errorf("read %d bytes before failing, want at most %d", conn.read, c.maxRead)
			}
			if _, again := g.Read(make([]byte, 4096)); again != err || g.violation() != err {
				t.Errorf("second read: %v, violation %v", again, g.violation())
			}
		})
	}
}

// TestGuardIdleHasNoBudget: while idling nothing is accumulated, so only the
// line and literal limits apply.
func TestGuardIdleHasNoBudget(t *testing.T) {
	const n = searchBudget + 1<<20 // more than any budget
	conn := &chunkConn{src: io.LimitReader(&endlessLines{line: "* 1 FETCH (FLAGS (\\Seen))\r\n"}, n), chunk: 4096}
	g := newGuard(conn, idleLimits())
	copied, err := io.Copy(io.Discard, g)
	if err != nil || copied != n {
		t.Fatalf("copied %d bytes, %v", copied, err)
	}
}

// TestGuardNewCommandNewBudget: the budget is per command.
func TestGuardNewCommandNewBudget(t *testing.T) {
	line := "* 1 EXISTS\r\n"
	src := strings.NewReader(strings.Repeat(line, 100))
	g := newGuard(&chunkConn{src: src, chunk: len(line)}, commandLimits(int64(len(line))*2))
	buf := make([]byte, 4096)
	for i := range 100 {
		if i%2 == 0 {
			g.set(commandLimits(int64(len(line)) * 2))
		}
		if _, err := g.Read(buf); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
}

// TestGuardRandomSplits: random response streams with literals survive random
// network splits and reader buffer sizes unchanged.
func TestGuardRandomSplits(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		var b bytes.Buffer
		for range 1 + r.IntN(20) {
			b.WriteString("* 1 FETCH (UID 1")
			if r.IntN(2) == 0 {
				lit := make([]byte, r.IntN(5000))
				for i := range lit {
					lit[i] = "{}0123456789\r\n~x"[r.IntN(16)]
				}
				b.WriteString(" BODY[] {" + strconv.Itoa(len(lit)) + "}\r\n")
				b.Write(lit)
			}
			b.WriteString(")\r\n")
		}
		in := b.Bytes()
		g := newGuard(&chunkConn{src: bytes.NewReader(in), chunk: 1 + r.IntN(9000)}, commandLimits(1<<20))
		out, err := readAll(g, []int{5, 64, 512, 4096, 32 << 10}[r.IntN(5)])
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("stream of %d bytes: got %d bytes, %v", len(in), len(out), err)
		}
	}
}

// BenchmarkGuardFetch: the cost of the guard on the hot path, a FETCH of 100
// messages of 30 KB read the way go-imap's bufio reads it.
func BenchmarkGuardFetch(b *testing.B) {
	var buf bytes.Buffer
	msg := bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\r\n"), 30000/38)
	for i := range 100 {
		buf.WriteString("* " + strconv.Itoa(i+1) + " FETCH (UID " + strconv.Itoa(i+1) + " INTERNALDATE \"17-Jul-1996 02:44:25 -0700\" BODY[] {" + strconv.Itoa(len(msg)) + "}\r\n")
		buf.Write(msg)
		buf.WriteString(")\r\n")
	}
	in := buf.Bytes()
	for _, guarded := range []bool{false, true} {
		name := "plain"
		if guarded {
			name = "guarded"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			p := make([]byte, 32<<10)
			sizes := make([]int64, 100)
			for i := range sizes {
				sizes[i] = int64(len(msg))
			}
			o := (&Options{}).withDefaults()
			for b.Loop() {
				conn := &chunkConn{src: bytes.NewReader(in), chunk: 16 << 10}
				var r io.Reader = conn
				if guarded {
					r = newGuard(conn, o.fetchLimits(sizes, true))
				}
				for {
					if _, err := r.Read(p); err != nil {
						break
					}
				}
			}
		})
	}
}
