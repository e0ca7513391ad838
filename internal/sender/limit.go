// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"errors"
	"fmt"
	"net"
)

// maxServerBytes bounds what an SMTP server may send in one session. Replies
// are short (an EHLO list is about 300 bytes, a certificate chain a few KiB),
// but go-smtp reads a multi-line reply (RFC 5321 §4.2.1) into one string
// however many lines it has. go-smtp limits each line to 2,000 bytes itself
// (lineLimitReader, also after STARTTLS); the byte count is what bounds the
// rest, and it works on the raw connection, under TLS too.
const maxServerBytes = 1 << 20

// errTooMuchFromServer is the cause when a server exceeds maxServerBytes.
var errTooMuchFromServer = fmt.Errorf("sender: the SMTP server sent more than %d bytes in one session", maxServerBytes)

// readCap fails reads once the server has sent maxServerBytes. Only the
// session's goroutine reads, so its fields need no lock.
type readCap struct {
	net.Conn
	left     int64
	exceeded bool
}

func newReadCap(conn net.Conn) *readCap { return &readCap{Conn: conn, left: maxServerBytes} }

func (c *readCap) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.exceeded = true
		return 0, errTooMuchFromServer
	}
	n, err := c.Conn.Read(p[:min(int64(len(p)), c.left)])
	c.left -= int64(n)
	return n, err
}

// refusedError is a connection that Options.Control refused.
type refusedError struct {
	addr string
	err  error
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("connection to %s refused by the network allow-list: %v", e.addr, e.err)
}

func (e *refusedError) Unwrap() error { return e.err }

func isRefused(err error) bool {
	var re *refusedError
	return errors.As(err, &re)
}
