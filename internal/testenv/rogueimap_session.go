// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// rogueSession serves one connection of a RogueIMAP; one goroutine owns it.
type rogueSession struct {
	s      *RogueIMAP
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	authed bool
}

const rogueDate = "01-Jan-2024 10:00:00 +0000"

func newRogueSession(s *RogueIMAP, conn net.Conn) *rogueSession {
	return &rogueSession{s: s, conn: conn, r: bufio.NewReader(conn), w: bufio.NewWriter(conn)}
}

func (rs *rogueSession) serve() {
	switch {
	case rs.s.has(RogueSilent):
		_, _ = io.Copy(io.Discard, rs.conn)
		return
	case rs.s.has(RogueGreetingEndlessLine):
		rs.w.WriteString("* OK ")
		rs.filler(-1)
		return
	}
	fmt.Fprintf(rs.w, "* OK [CAPABILITY %s] rogue ready\r\n", rs.caps())
	if rs.w.Flush() != nil || rs.s.has(RogueGreetClose) {
		return
	}
	for {
		tag, cmd, args, err := rs.readCommand()
		if err != nil || !rs.handle(tag, cmd, args) || rs.w.Flush() != nil {
			return
		}
	}
}

func (rs *rogueSession) caps() string {
	if rs.s.has(RogueStartTLSRefused) || rs.s.has(RogueStartTLSGarbage) {
		return "IMAP4rev1 IDLE STARTTLS"
	}
	return "IMAP4rev1 IDLE"
}

// readCommand reads one command, answering the synchronizing literals of
// its arguments (RFC 9051 §4.3), and records it.
func (rs *rogueSession) readCommand() (tag, cmd, args string, err error) {
	var b strings.Builder
	for {
		line, err := rs.r.ReadString('\n')
		if err != nil {
			return "", "", "", err
		}
		line = strings.TrimRight(line, "\r\n")
		n, i := clientLiteral(line)
		if i < 0 {
			b.WriteString(line)
			break
		}
		b.WriteString(line[:i])
		fmt.Fprintf(rs.w, "+ ready\r\n")
		if err := rs.w.Flush(); err != nil {
			return "", "", "", err
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(rs.r, lit); err != nil {
			return "", "", "", err
		}
		b.WriteString(strconv.Quote(string(lit)))
	}
	tag, rest, _ := strings.Cut(b.String(), " ")
	cmd, args, _ = strings.Cut(rest, " ")
	cmd = strings.ToUpper(cmd)
	if cmd == "UID" {
		var sub string
		sub, args, _ = strings.Cut(args, " ")
		cmd += " " + strings.ToUpper(sub)
	}
	switch cmd {
	case "LOGIN", "AUTHENTICATE":
		rs.s.record(cmd)
	default:
		rs.s.record(strings.TrimSpace(cmd + " " + args))
	}
	return tag, cmd, args, nil
}

// clientLiteral returns the size and offset of the literal "{n}" line
// announces at its end; offset -1 if none.
func clientLiteral(line string) (n, i int) {
	i = strings.LastIndexByte(line, '{')
	if i < 0 || !strings.HasSuffix(line, "}") {
		return 0, -1
	}
	n, err := strconv.Atoi(line[i+1 : len(line)-1])
	if err != nil || n < 0 {
		return 0, -1
	}
	return n, i
}

// handle answers one command; false ends the session.
func (rs *rogueSession) handle(tag, cmd, args string) bool {
	switch cmd {
	case "CAPABILITY":
		fmt.Fprintf(rs.w, "* CAPABILITY %s\r\n", rs.caps())
	case "NOOP", "CLOSE", "UNSELECT", "ENABLE", "CHECK":
	case "ID":
		rs.w.WriteString("* ID NIL\r\n")
	case "LOGOUT":
		fmt.Fprintf(rs.w, "* BYE rogue: bye\r\n%s OK logged out\r\n", tag)
		_ = rs.w.Flush()
		return false
	case "STARTTLS":
		return rs.startTLS(tag)
	case "LOGIN":
		rs.authed = true
	case "AUTHENTICATE":
		if !strings.Contains(args, " ") { // no initial response: ask for it
			rs.w.WriteString("+ \r\n")
			if rs.w.Flush() != nil {
				return false
			}
			if _, err := rs.r.ReadString('\n'); err != nil {
				return false
			}
		}
		rs.authed = true
	default:
		if !rs.authed {
			fmt.Fprintf(rs.w, "%s BAD log in first\r\n", tag)
			return true
		}
		return rs.handleAuthed(tag, cmd, args)
	}
	fmt.Fprintf(rs.w, "%s OK %s done\r\n", tag, cmd)
	return true
}

// handleAuthed answers a command of the authenticated state.
func (rs *rogueSession) handleAuthed(tag, cmd, args string) bool {
	switch {
	case rs.s.has(RogueStall):
		return true
	case rs.s.has(RogueByeMidCommand):
		if cmd == "LIST" {
			rs.w.WriteString("* LIST (\\HasNoChildren) \"/\" INBOX\r\n")
		}
		rs.w.WriteString("* BYE rogue: going away\r\n")
		_ = rs.w.Flush()
		return false
	}
	switch cmd {
	case "LIST":
		return rs.list(tag)
	case "STATUS":
		msgs := rs.s.messages()
		fmt.Fprintf(rs.w, "* STATUS INBOX (MESSAGES %d UIDNEXT %d UIDVALIDITY 1)\r\n", len(msgs), len(msgs)+1)
	case "SELECT", "EXAMINE":
		msgs := rs.s.messages()
		fmt.Fprintf(rs.w, "* FLAGS (\\Seen \\Answered \\Flagged \\Deleted \\Draft)\r\n* %d EXISTS\r\n* 0 RECENT\r\n"+
			"* OK [UIDVALIDITY 1] ok\r\n* OK [UIDNEXT %d] ok\r\n", len(msgs), len(msgs)+1)
	case "UID FETCH":
		return rs.fetch(tag, args)
	case "UID SEARCH":
		return rs.search(tag)
	case "IDLE":
		return rs.idle(tag)
	default:
		fmt.Fprintf(rs.w, "%s BAD unknown command\r\n", tag)
		return true
	}
	fmt.Fprintf(rs.w, "%s OK %s done\r\n", tag, cmd)
	return true
}

func (rs *rogueSession) startTLS(tag string) bool {
	switch {
	case rs.s.has(RogueStartTLSRefused):
		fmt.Fprintf(rs.w, "%s NO [ALERT] TLS is not available\r\n", tag)
		return true
	case rs.s.has(RogueStartTLSGarbage):
		fmt.Fprintf(rs.w, "%s OK begin TLS now\r\n", tag)
		if rs.w.Flush() != nil {
			return false
		}
		var hello [512]byte
		_, _ = rs.r.Read(hello[:]) // the ClientHello, answered in plain text
		rs.w.WriteString("* this is not TLS at all\r\n")
		_ = rs.w.Flush()
		return false
	}
	fmt.Fprintf(rs.w, "%s BAD unknown command\r\n", tag)
	return true
}

func (rs *rogueSession) list(tag string) bool {
	switch {
	case rs.s.has(RogueListHugeLiteral):
		fmt.Fprintf(rs.w, "* LIST () \"/\" {%d}\r\n", RogueHugeLiteral)
		rs.filler(RogueHugeLiteral)
		return false
	case rs.s.has(RogueListEndlessLine):
		rs.w.WriteString("* LIST () \"/\" ")
		rs.filler(-1)
		return false
	case rs.s.has(RogueListEndless):
		for i := 0; ; i++ {
			if _, err := fmt.Fprintf(rs.w, "* LIST (\\HasNoChildren) \"/\" \"Folder %d\"\r\n", i); err != nil {
				return false
			}
		}
	}
	fmt.Fprintf(rs.w, "* LIST (\\HasNoChildren) \"/\" INBOX\r\n%s OK LIST done\r\n", tag)
	return true
}

func (rs *rogueSession) search(tag string) bool {
	if rs.s.has(RogueSearchEndlessLine) {
		rs.w.WriteString("* SEARCH")
		for { // long numbers: fewer for the client to parse per byte
			if _, err := rs.w.WriteString(" 4000000000"); err != nil {
				return false
			}
		}
	}
	rs.w.WriteString("* SEARCH")
	for i := range rs.s.messages() {
		fmt.Fprintf(rs.w, " %d", i+1)
	}
	fmt.Fprintf(rs.w, "\r\n%s OK SEARCH done\r\n", tag)
	return true
}

func (rs *rogueSession) idle(tag string) bool {
	rs.w.WriteString("+ idling\r\n")
	if rs.w.Flush() != nil {
		return false
	}
	if rs.s.has(RogueIdleHugeLiteral) {
		fmt.Fprintf(rs.w, "* 1 FETCH (BODY[] {%d}\r\n", RogueHugeLiteral)
		rs.filler(RogueHugeLiteral)
		return false
	}
	line, err := rs.r.ReadString('\n')
	if err != nil || !strings.EqualFold(strings.TrimSpace(line), "DONE") {
		return false
	}
	fmt.Fprintf(rs.w, "%s OK IDLE terminated\r\n", tag)
	return true
}

// fetch answers UID FETCH for the messages of the set, or endlessly.
func (rs *rogueSession) fetch(tag, args string) bool {
	if rs.s.has(RogueFetchEndless) {
		for uid := 1; ; uid++ {
			if _, err := fmt.Fprintf(rs.w, "* %d FETCH (UID %d RFC822.SIZE 100)\r\n", uid, uid); err != nil {
				return false
			}
		}
	}
	set, items, _ := strings.Cut(args, " ")
	items = strings.ToUpper(items)
	msgs := rs.s.messages()
	for i, m := range msgs {
		if !inUIDSet(set, uint32(i+1), uint32(len(msgs))) {
			continue
		}
		if !rs.fetchOne(i+1, m, items) {
			return false
		}
	}
	fmt.Fprintf(rs.w, "%s OK FETCH done\r\n", tag)
	return true
}

func (rs *rogueSession) fetchOne(uid int, m RogueMessage, items string) bool {
	fmt.Fprintf(rs.w, "* %d FETCH (UID %d", uid, uid)
	if strings.Contains(items, "RFC822.SIZE") {
		size := m.Size
		if size == 0 {
			size = int64(len(m.Raw))
		}
		fmt.Fprintf(rs.w, " RFC822.SIZE %d", size)
	}
	if strings.Contains(items, "INTERNALDATE") {
		fmt.Fprintf(rs.w, " INTERNALDATE %q", rogueDate)
	}
	if strings.Contains(items, "FLAGS") {
		rs.w.WriteString(" FLAGS ()")
	}
	if strings.Contains(items, "[HEADER]") {
		h := m.Raw
		if i := bytes.Index(h, []byte("\r\n\r\n")); i >= 0 {
			h = h[:i+4]
		}
		fmt.Fprintf(rs.w, " BODY[HEADER] {%d}\r\n", len(h))
		rs.w.Write(h)
	}
	if strings.Contains(items, "[]") {
		lit := max(m.Literal, int64(len(m.Raw)))
		fmt.Fprintf(rs.w, " BODY[] {%d}\r\n", lit)
		rs.w.Write(m.Raw)
		if !rs.filler(lit - int64(len(m.Raw))) {
			return false
		}
	}
	_, err := rs.w.WriteString(")\r\n")
	return err == nil
}

// filler writes n bytes of filler (n < 0: until the client hangs up) and
// reports whether all of it was written.
func (rs *rogueSession) filler(n int64) bool {
	block := bytes.Repeat([]byte("x"), 64<<10)
	for n != 0 {
		b := block
		if n > 0 && n < int64(len(b)) {
			b = b[:n]
		}
		if _, err := rs.w.Write(b); err != nil {
			return false
		}
		if n > 0 {
			n -= int64(len(b))
		}
	}
	return true
}

// inUIDSet reports whether uid is in the sequence set (RFC 9051 §9
// sequence-set: "1,3:5,7:*"); "*" is the highest UID, and "n:*" always
// contains it.
func inUIDSet(set string, uid, highest uint32) bool {
	num := func(s string) uint32 {
		if s == "*" {
			return highest
		}
		n, _ := strconv.ParseUint(s, 10, 32)
		return uint32(n)
	}
	for _, r := range strings.Split(set, ",") {
		lo, hi, isRange := strings.Cut(r, ":")
		a, b := num(lo), num(lo)
		if isRange {
			b = num(hi)
		}
		if a > b {
			a, b = b, a
		}
		if uid >= a && uid <= b {
			return true
		}
	}
	return false
}
