// SPDX-License-Identifier: Apache-2.0

package testenv

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// RogueIMAP is a small scripted IMAP server on a loopback port that misbehaves
// on demand, for testing that a client stays bounded in time and memory
// against a hostile or broken server. Without behaviours it is an honest,
// minimal IMAP4rev1 server: any user logs in (LOGIN or AUTHENTICATE PLAIN), and
// there is one folder, INBOX, holding Messages (UIDs 1..n, UIDVALIDITY 1). It
// answers CAPABILITY, NOOP, LOGOUT, LOGIN, AUTHENTICATE, STARTTLS (refused
// unless a behaviour says otherwise), LIST, STATUS, SELECT, EXAMINE, UID FETCH
// (UID, FLAGS, RFC822.SIZE, INTERNALDATE, BODY[] and BODY[HEADER], PEEK or
// not), UID SEARCH (every UID, whatever the criteria), IDLE, CLOSE, UNSELECT,
// ENABLE and ID; anything else gets BAD. Plain TCP only.
//
// It counts connections and records every command line (LOGIN and
// AUTHENTICATE without their arguments), so a test can see what a client did,
// e.g. that it fetched a header after a lying FETCH, or that it did not
// reconnect in plain text after a failed TLS handshake.
type RogueIMAP struct {
	Addr string // 127.0.0.1:port

	ln        net.Listener
	behaviors []RogueBehavior
	conns     atomic.Int64
	wg        sync.WaitGroup

	mu       sync.Mutex
	msgs     []RogueMessage
	commands []string
	open     map[net.Conn]bool
	closed   bool
}

// RogueBehavior is one way a RogueIMAP misbehaves. Behaviours combine.
type RogueBehavior int

const (
	// RogueListHugeLiteral answers LIST with a folder name announced as a
	// RogueHugeLiteral-byte literal, then streams filler until the client
	// hangs up.
	RogueListHugeLiteral RogueBehavior = iota + 1
	// RogueListEndlessLine answers LIST with one line that never ends.
	RogueListEndlessLine
	// RogueListEndless answers LIST with untagged LIST responses, a new
	// folder each, forever (go-imap accumulates them until the tagged reply).
	RogueListEndless
	// RogueFetchLie makes message 2 of the default INBOX lie: its RFC822.SIZE
	// is its true size, but BODY[] comes as a RogueHugeLiteral-byte literal
	// (the message, then filler, all of it sent). BODY[HEADER] is honest.
	RogueFetchLie
	// RogueFetchEndless answers every UID FETCH with untagged FETCH
	// responses for UID 1, 2, 3, ... forever.
	RogueFetchEndless
	// RogueSearchEndlessLine answers UID SEARCH with a SEARCH line of UIDs
	// that never ends.
	RogueSearchEndlessLine
	// RogueIdleHugeLiteral sends, during IDLE, an unsolicited FETCH whose
	// BODY[] is announced as a RogueHugeLiteral-byte literal, then filler.
	RogueIdleHugeLiteral
	// RogueStall never answers any command after a successful login.
	RogueStall
	// RogueByeMidCommand answers the first command after login with part of
	// a response (one LIST line for LIST), then "* BYE" and closes.
	RogueByeMidCommand
	// RogueGreetClose sends the greeting and closes the connection.
	RogueGreetClose
	// RogueSilent accepts connections and never sends a greeting.
	RogueSilent
	// RogueGreetingEndlessLine sends a greeting line that never ends.
	RogueGreetingEndlessLine
	// RogueStartTLSRefused offers STARTTLS and answers it with NO.
	RogueStartTLSRefused
	// RogueStartTLSGarbage offers STARTTLS, accepts it, and answers the TLS
	// ClientHello with plain text: a failed handshake.
	RogueStartTLSGarbage
)

// RogueHugeLiteral is the size of the literals the huge-literal behaviours
// announce: 1 GiB.
const RogueHugeLiteral = 1 << 30

// RogueMessage is one message of a RogueIMAP's INBOX.
type RogueMessage struct {
	Raw []byte
	// Size is the RFC822.SIZE announced; 0 means len(Raw).
	Size int64
	// Literal is the size of the BODY[] literal sent; 0 means len(Raw). A
	// larger value sends Raw followed by filler up to Literal bytes.
	Literal int64
}

// RogueMessages returns the default INBOX: three small messages, each with a
// unique Subject ("rogue 1" ...) and Message-ID.
func RogueMessages() []RogueMessage {
	out := make([]RogueMessage, 3)
	for i := range out {
		out[i].Raw = fmt.Appendf(nil, "From: rogue@example.com\r\nTo: victim@example.com\r\n"+
			"Subject: rogue %d\r\nDate: Mon, 01 Jan 2024 10:00:0%d +0000\r\nMessage-ID: <rogue-%d@example.com>\r\n"+
			"Content-Type: text/plain\r\n\r\nbody of rogue message %d\r\n", i+1, i, i+1, i+1)
	}
	return out
}

// StartRogueIMAP starts a RogueIMAP with the given behaviours (none: an honest
// server). Close it when done.
func StartRogueIMAP(behaviors ...RogueBehavior) (*RogueIMAP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("testenv: rogue imap: %w", err)
	}
	s := &RogueIMAP{Addr: ln.Addr().String(), ln: ln, behaviors: behaviors,
		msgs: RogueMessages(), open: map[net.Conn]bool{}}
	if s.has(RogueFetchLie) {
		s.msgs[1].Literal = RogueHugeLiteral
	}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// NewRogueIMAPT starts a RogueIMAP that is closed in t.Cleanup; if the test
// failed, the commands it received are logged first.
func NewRogueIMAPT(t testing.TB, behaviors ...RogueBehavior) *RogueIMAP {
	t.Helper()
	s, err := StartRogueIMAP(behaviors...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rogue imap: %d connections, commands:\n%s", s.Connections(), strings.Join(s.Commands(), "\n"))
		}
		s.Close()
	})
	return s
}

// SetMessages replaces the INBOX (UIDs 1..len(msgs)) for the next commands.
func (s *RogueIMAP) SetMessages(msgs []RogueMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = slices.Clone(msgs)
}

// Connections returns how many connections the server accepted.
func (s *RogueIMAP) Connections() int { return int(s.conns.Load()) }

// Commands returns every command line received so far, without tags, in
// order over all connections.
func (s *RogueIMAP) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.commands)
}

// CommandCount returns how many received command lines contain substr
// (case-sensitive, e.g. "BODY.PEEK[HEADER]" or "LIST").
func (s *RogueIMAP) CommandCount(substr string) int {
	n := 0
	for _, c := range s.Commands() {
		if strings.Contains(c, substr) {
			n++
		}
	}
	return n
}

// Close stops accepting, closes every connection and waits for the handlers.
func (s *RogueIMAP) Close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (s *RogueIMAP) has(b RogueBehavior) bool { return slices.Contains(s.behaviors, b) }

func (s *RogueIMAP) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			conn.Close()
			return
		}
		s.open[conn] = true
		s.mu.Unlock()
		s.conns.Add(1)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.forget(conn)
			newRogueSession(s, conn).serve()
		}()
	}
}

func (s *RogueIMAP) forget(conn net.Conn) {
	conn.Close()
	s.mu.Lock()
	delete(s.open, conn)
	s.mu.Unlock()
}

func (s *RogueIMAP) record(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, line)
}

func (s *RogueIMAP) messages() []RogueMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs
}
