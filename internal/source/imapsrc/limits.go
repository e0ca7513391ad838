// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"fmt"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// limits bound what the server may send in response to one command (see
// guard). The Conn sets a fresh *limits before every command.
type limits struct {
	line    int64 // non-literal bytes of one physical line
	literal int64 // bytes of one literal
	total   int64 // bytes of all responses to the command; 0: no budget (IDLE)
	// reserve is the part of total that literals leave to lines, so that the
	// FETCH lines and the tagged reply after a cut literal still fit.
	reserve int64
	cut     cut // what an oversized literal gets
}

// cut says what happens to a literal over its limit.
type cut uint8

const (
	cutFail   cut = iota // fail the read: nothing but message bodies is ever that large
	cutNil               // replace it by NIL: the fetch code then asks for the header only
	cutPrefix            // keep its first limit bytes (a header fetch: a cut header beats none)
)

// The limits. Response lines of real servers are short (a LIST or FETCH line
// is a few hundred bytes, CAPABILITY about one KiB; Dovecot's own line limit
// is 64 KiB), and nothing but a message body comes as a large literal: a
// folder name, a STATUS or a greeting does not. UID SEARCH is the exception
// among lines: its result is one line, about 8 MB for a million messages.
// The budgets bound what go-imap accumulates for one command; exceeding one
// fails the command (for a message fetch: cuts the literal), and a reconnect
// starts afresh, so they are generous rather than tight.
const (
	maxLineBytes       = 64 << 10
	maxSearchLineBytes = 16 << 20
	maxLiteralBytes    = 64 << 10
	// commandBudget: greeting and login, STATUS, EXAMINE, the sizes FETCH of a
	// batch, APPEND, IDLE start and end, LOGOUT.
	commandBudget = 1 << 20
	// noopBudget: a NOOP also collects the flag changes and expunges of the
	// last poll interval; they are not accumulated, only counted.
	noopBudget = 8 << 20
	// listBudget: LIST of every folder; some 50,000 folders of 150 bytes.
	listBudget = 8 << 20
	// listAfterBudget: UID, size and date of every message above the cursor,
	// about 90 bytes each, so some 90,000 new messages. A larger backlog is
	// listed in pages (ListRange), when UIDNEXT is known.
	listAfterBudget = 8 << 20
	// maxListRange bounds the UIDs of one ListRange.
	maxListRange = 100_000
	// searchBudget: one maximal SEARCH line plus room for unilateral data.
	searchBudget = maxSearchLineBytes + 1<<20
	// maxHeaderBytes bounds BODY[HEADER], fetched for a message delivered
	// with its header only; real headers are a few KiB, rarely 100 KiB.
	maxHeaderBytes = 1 << 20
	// fetchOverhead and messageOverhead: FETCH lines, INTERNALDATE, the
	// tagged reply and unilateral updates around the message literals.
	fetchOverhead   = 64 << 10
	messageOverhead = 1 << 10
	// minSlack: a message literal may exceed the RFC822.SIZE announced for it
	// by max(minSlack, size/2). Exchange and other servers that store mail in
	// another form report an estimate, a little off in either direction.
	minSlack = 1 << 20
)

// listRangeBudget: n messages at about 90 bytes each, twice, and room for
// unilateral data.
func listRangeBudget(n uint32) int64 { return 2*90*int64(n) + maxLineBytes }

func commandLimits(total int64) *limits {
	return &limits{line: maxLineBytes, literal: maxLiteralBytes, total: total}
}

// idleLimits: unilateral data during IDLE is not accumulated, so there is no
// budget, but lines and literals stay bounded.
func idleLimits() *limits { return commandLimits(0) }

func searchLimits() *limits {
	return &limits{line: maxSearchLineBytes, literal: maxLiteralBytes, total: searchBudget}
}

func headerLimits() *limits {
	return &limits{line: maxLineBytes, literal: maxHeaderBytes, total: maxHeaderBytes + fetchOverhead,
		reserve: fetchOverhead, cut: cutPrefix}
}

// slack is how much a message may exceed its announced size.
func slack(size int64) int64 { return max(minSlack, size/2) }

// messageBound is the most we read of a message whose RFC822.SIZE is size
// (known is false when the caller has no size: then MaxMessageBytes).
func (o *Options) messageBound(size int64, known bool) int64 {
	if !known {
		return o.MaxMessageBytes
	}
	size = min(max(size, 0), o.MaxMessageBytes) // the size is the server's word: no overflow
	return min(o.MaxMessageBytes, size+slack(size))
}

// fetchLimits bounds a UID FETCH of the messages of the given sizes: each
// literal by the largest message bound, all of them together by the sum of
// the sizes plus slack. A literal over either is cut to NIL.
func (o *Options) fetchLimits(sizes []int64, known bool) *limits {
	var lit, sum int64
	for _, s := range sizes {
		lit = max(lit, o.messageBound(s, known))
		sum += min(max(s, 0), o.MaxMessageBytes)
	}
	bodies := sum + slack(sum)
	if !known {
		bodies = lit * int64(len(sizes))
	}
	reserve := fetchOverhead + messageOverhead*int64(len(sizes))
	return &limits{line: maxLineBytes, literal: lit, total: bodies + reserve, reserve: reserve, cut: cutNil}
}

// limitError is a limit the server broke. Its text says what happened but
// quotes nothing the server sent.
type limitError struct{ msg string }

func (e *limitError) Error() string { return e.msg }

func lineTooLong(limit int64) *limitError {
	return &limitError{fmt.Sprintf("imap: the server sent a response line longer than %d bytes", limit)}
}

func literalTooLarge(size, limit int64) *limitError {
	return &limitError{fmt.Sprintf("imap: the server sent a %d-byte literal where at most %d are allowed", size, limit)}
}

func tooMuch(limit int64) *limitError {
	return &limitError{fmt.Sprintf("imap: the server sent more than %d bytes in response to one command", limit)}
}

// protocolError reports a broken limit as the failure of op.
func protocolError(op string, v error) error {
	return &mail.Error{Class: mail.ClassProtocol, Op: op, Err: v}
}
