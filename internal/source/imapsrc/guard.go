// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
)

// guard sits between go-imap's bufio.Reader and the connection to the server
// and bounds what a server can make us read and hold: go-imap itself reads
// lines and literals of any length and accumulates every untagged response of
// a command (LIST, FETCH, SEARCH) until it completes.
//
// It follows just enough of the IMAP framing (RFC 9051 §4.3, RFC 3501 §4.3):
// a response is CRLF-terminated physical lines, and a line ending in "{N}"
// announces N bytes of literal after its CRLF, after which the same response
// continues on a new physical line. "~{N}" (RFC 3516 literal8) frames the same
// way; "{N+}" (RFC 7888 LITERAL+) is only sent by clients and is left to
// go-imap to reject. Like go-imap's decoder it accepts a lone LF and one space
// before the line end.
//
// Per command (set by the Conn) it enforces the limits in limits: the length
// of a physical line, the size of one literal and the bytes of all responses
// to the command. Literal bytes are handed on without being looked at. A
// violation fails the read for good with a *limitError; go-imap then fails the
// command and closes the connection, and the Conn reports the violation
// instead of go-imap's text. In a message fetch an oversized literal is cut
// instead (limits.cut): its "{N}" is rewritten and the excess is read from the
// socket and dropped, so memory stays bounded by the limit, never by N.
//
// Only the reader goroutine (go-imap's, or Dial's before the client exists)
// touches the reader state; limits and the violation are atomics because the
// Conn's goroutine sets and reads them. Nothing of size is kept while the
// connection idles: reads go straight into the caller's buffer.
type guard struct {
	net.Conn
	lim     atomic.Pointer[limits]
	failed  atomic.Pointer[limitError]
	readErr atomic.Pointer[error]  // the first failed read of the connection
	bye     atomic.Pointer[string] // the text of the server's "* BYE", once seen

	// Reader state.
	cur     *limits // the limits in force; a new pointer starts a new budget
	used    int64   // bytes handed on under cur, counted against cur.total
	line    int64   // bytes of the current physical line
	pass    int64   // literal bytes still to hand on
	drop    int64   // literal bytes still to read and drop (a cut literal's tail)
	held    int     // bytes in hold
	hold    [holdMax]byte
	prefix  []byte // handed on before anything is read (our own STARTTLS)
	spilled []byte // output that did not fit a small Read buffer
}

const (
	// maxDigits is the longest literal size we parse; 19 digits hold any int64.
	maxDigits = 19
	// holdMax bounds the bytes held back at the end of a read because they
	// may be the start of a literal header: "{", the digits, "}", SP, CR.
	holdMax = 1 + maxDigits + 3
	// minRead: smaller Read buffers go through a stack buffer of this size,
	// so a held-back header always fits next to new data.
	minRead = 64
	// drainBuf: the tail of a cut literal is read and dropped in reads of
	// this size rather than through go-imap's 4 KiB buffer; the buffer lives
	// only while draining.
	drainBuf = 64 << 10
)

func newGuard(conn net.Conn, l *limits) *guard {
	g := &guard{Conn: conn}
	g.lim.Store(l)
	return g
}

// set puts l in force for the next command; its total budget starts at zero.
func (g *guard) set(l *limits) { g.lim.Store(l) }

// violation returns the limit the server broke, nil if none.
func (g *guard) violation() error {
	if v := g.failed.Load(); v != nil {
		return v
	}
	return nil
}

// connError returns the error the connection's read failed with, nil if none
// (or end of stream): go-imap keeps only its text.
func (g *guard) connError() error {
	if e := g.readErr.Load(); e != nil {
		return *e
	}
	return nil
}

// buffered reports bytes read from the connection but not handed on yet.
func (g *guard) buffered() int { return g.held + len(g.spilled) }

func (g *guard) Read(p []byte) (int, error) {
	if v := g.failed.Load(); v != nil {
		return 0, v
	}
	switch {
	case len(p) == 0:
		return 0, nil
	case len(g.prefix) > 0:
		n := copy(p, g.prefix)
		g.prefix = g.prefix[n:]
		return n, nil
	case len(g.spilled) > 0:
		n := copy(p, g.spilled)
		if g.spilled = g.spilled[n:]; len(g.spilled) == 0 {
			g.spilled = nil
		}
		return n, nil
	case len(p) < minRead:
		// bufio never reads this little; stay correct if someone does.
		var buf [minRead]byte
		n, err := g.fill(buf[:])
		k := copy(p, buf[:n])
		if k < n {
			g.spilled = append([]byte(nil), buf[k:n]...)
			return k, nil // err (if any) comes again on the next read
		}
		return k, err
	}
	return g.fill(p)
}

// fill reads into p (at least minRead bytes) and processes in place until it
// has something to hand on or the connection fails.
func (g *guard) fill(p []byte) (int, error) {
	for {
		if g.drop >= drainBuf {
			if err := g.drain(); err != nil {
				return 0, g.readFailed(err)
			}
		}
		k := copy(p, g.hold[:g.held])
		g.held = 0
		n, err := g.Conn.Read(p[k:])
		if err != nil {
			err = g.readFailed(err)
		}
		out, verr := g.scan(p[:k+n], err != nil)
		if verr != nil {
			g.failed.CompareAndSwap(nil, verr)
			return 0, g.failed.Load()
		}
		if out > 0 || err != nil {
			return out, err
		}
	}
}

// drain reads and drops a cut literal's tail while it is at least drainBuf
// long, so it never reads past the literal.
func (g *guard) drain() error {
	buf := make([]byte, drainBuf)
	for g.drop >= drainBuf {
		n, err := g.Conn.Read(buf)
		g.drop -= int64(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// readFailed records err, a failed read of the connection, and returns it.
// A read cut short by our own Close says nothing about the server.
func (g *guard) readFailed(err error) error {
	if err != io.EOF && !errors.Is(err, net.ErrClosed) {
		e := err // escapes only here, not on every read
		g.readErr.CompareAndSwap(nil, &e)
	}
	return err
}

// scan processes b in place and returns how many bytes at its start are to be
// handed on; a possible literal header at its end is moved to hold unless
// final (the connection has nothing more to give).
func (g *guard) scan(b []byte, final bool) (int, *limitError) {
	if l := g.lim.Load(); l != g.cur {
		g.cur, g.used = l, 0
	}
	r, w := 0, 0
	for r < len(b) {
		switch {
		case g.pass > 0:
			m := int(min(g.pass, int64(len(b)-r)))
			if w != r { // only after a cut earlier in b
				copy(b[w:], b[r:r+m])
			}
			r, w = r+m, w+m
			g.pass -= int64(m)
			g.used += int64(m)
		case g.drop > 0:
			m := int(min(g.drop, int64(len(b)-r)))
			r += m
			g.drop -= int64(m)
		default:
			var err *limitError
			if r, w, err = g.scanLine(b, r, w, final); err != nil {
				return 0, err
			}
		}
	}
	return w, nil
}

// scanLine processes the line bytes of b from r (writing output at w) up to
// and including the next LF, or to the end of b, and returns the new r and w.
func (g *guard) scanLine(b []byte, r, w int, final bool) (int, int, *limitError) {
	j := bytes.IndexByte(b[r:], '\n')
	if j < 0 {
		end := len(b)
		if !final {
			end = r + headerStart(b[r:])
		}
		if err := g.count(int64(end - r)); err != nil {
			return 0, 0, err
		}
		w = move(b, w, r, end)
		g.held = copy(g.hold[:], b[end:])
		return len(b), w, nil
	}
	end := r + j + 1
	start := g.line == 0
	if err := g.count(int64(end - r)); err != nil {
		return 0, 0, err
	}
	g.line = 0
	if start {
		g.noteBye(b[r:end])
	}
	size, open, ok := literalHeader(b[r:end])
	if !ok {
		return end, move(b, w, r, end), nil
	}
	keep, nilValue, err := g.admit(size)
	if err != nil {
		return 0, 0, err
	}
	if keep == size {
		g.pass = size
		return end, move(b, w, r, end), nil
	}
	// Cut: rewrite the header in place (never longer than the original).
	var rb [holdMax + 2]byte
	repl := append(rb[:0], "NIL"...)
	if !nilValue {
		brace := bytes.LastIndexByte(b[r:end], '}')
		repl = strconv.AppendInt(append(rb[:0], '{'), keep, 10)
		repl = append(append(repl, '}'), b[r+brace+1:end]...)
	}
	w = move(b, w, r, r+open)
	w += copy(b[w:], repl)
	g.pass, g.drop = keep, size-keep
	return end, w, nil
}

// count adds n line bytes to the physical line and the command's budget.
func (g *guard) count(n int64) *limitError {
	g.line += n
	g.used += n
	if l := g.cur; g.line > l.line {
		return lineTooLong(l.line)
	} else if l.total > 0 && g.used > l.total {
		return tooMuch(l.total)
	}
	return nil
}

// admit decides about a literal of size bytes: keep is how many of them go on
// (size when it fits); nilValue replaces the whole literal by NIL.
func (g *guard) admit(size int64) (keep int64, nilValue bool, err *limitError) {
	l := g.cur
	allowed := l.literal
	if l.total > 0 {
		allowed = min(allowed, max(0, l.total-l.reserve-g.used))
	}
	switch {
	case size <= allowed:
		return size, false, nil
	case l.cut == cutNil:
		return 0, true, nil
	case l.cut == cutPrefix:
		return allowed, false, nil
	}
	return 0, false, literalTooLarge(size, allowed)
}

// move hands on b[from:to] by moving it to w (a no-op unless an earlier cut
// shortened b) and returns the new w.
func move(b []byte, w, from, to int) int {
	if w != from {
		copy(b[w:], b[from:to])
	}
	return w + to - from
}

// literalHeader reports whether line (ending in LF) ends with a literal
// announcement "{N}" [SP] [CR] LF, its size and the offset of its "{".
func literalHeader(line []byte) (size int64, open int, ok bool) {
	k := len(line) - 1 // the LF
	if k > 0 && line[k-1] == '\r' {
		k--
	}
	if k > 0 && line[k-1] == ' ' {
		k--
	}
	if k == 0 || line[k-1] != '}' {
		return 0, 0, false
	}
	brace := k - 1
	d := brace
	for d > 0 && brace-d < maxDigits && isDigit(line[d-1]) {
		d--
	}
	if d == brace || d == 0 || line[d-1] != '{' {
		return 0, 0, false
	}
	var n uint64 // 19 digits fit, but may exceed an int64
	for _, c := range line[d:brace] {
		n = n*10 + uint64(c-'0')
	}
	if n > math.MaxInt64 {
		return 0, 0, false
	}
	return int64(n), d - 1, true
}

// headerStart returns where a possible, still incomplete literal header
// begins at the end of seg (a line without its LF yet), len(seg) if none.
func headerStart(seg []byte) int {
	k := len(seg)
	if k > 0 && seg[k-1] == '\r' {
		k--
	}
	if k > 0 && seg[k-1] == ' ' {
		k--
	}
	if k > 0 && seg[k-1] == '}' {
		k--
	}
	d := k
	for d > 0 && k-d < maxDigits && isDigit(seg[d-1]) {
		d--
	}
	if d > 0 && seg[d-1] == '{' {
		return d - 1
	}
	return len(seg)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// maxByeText bounds the BYE text kept for an error message.
const maxByeText = 200

// noteBye keeps the text of a "* BYE" line (RFC 9051 §7.1.5): go-imap closes
// the connection on it without saying why, and the server's reason ("Server
// shutting down", "Disconnected for inactivity") is what the user needs.
func (g *guard) noteBye(line []byte) {
	if len(line) < 6 || line[0] != '*' || line[1] != ' ' || !bytes.EqualFold(line[2:5], []byte("BYE")) {
		return
	}
	text := strings.TrimSpace(string(line[5:]))
	if len(text) > maxByeText {
		text = text[:maxByeText]
	}
	text = strings.ToValidUTF8(text, "?")
	g.bye.CompareAndSwap(nil, &text)
}

// byeText returns the server's BYE text, "" when it sent none.
func (g *guard) byeText() string {
	if p := g.bye.Load(); p != nil {
		return *p
	}
	return ""
}
