// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/mime"
)

// MIME is a downloaded message.
type MIME struct {
	// Raw is the RFC 5322 message; when Truncated, its header block only
	// (through the blank line that ends it).
	Raw []byte
	// Truncated: the message was larger than the limit.
	Truncated bool
}

// MIME downloads the message as RFC 5322 bytes (GET …/messages/{id}/$value),
// streamed: at most limit bytes of it are kept (DefaultMaxMIME when limit
// <= 0), and a larger message comes back Truncated with its header block
// only, the rest unread. A message that is gone fails with ErrNotFound
// (ClassProtocol).
func (c *Client) MIME(ctx context.Context, user, id string, limit int64) (*MIME, error) {
	const op = "graph mime"
	if user == "" || id == "" {
		return nil, mail.Errorf(mail.ClassConfig, op, "empty user or message id")
	}
	if limit <= 0 {
		limit = DefaultMaxMIME
	}
	r := &call{
		op: op, method: "GET", users: []string{user}, kind: tItem, perm: "Mail.Read", idempotent: true,
		url:    c.resolve(userPath(user)+"/messages/"+url.PathEscape(id)+"/$value", ""),
		accept: "message/rfc822, text/plain, */*",
	}
	var m *MIME
	err := c.do(ctx, r, func(resp *http.Response) error {
		var err error
		m, err = readMIME(resp.Body, limit, resp.ContentLength)
		if err == nil && len(m.Raw) == 0 {
			return mail.Errorf(mail.ClassProtocol, op, "empty message")
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// readMIME reads body up to limit bytes; one byte more makes the message
// Truncated. size, when known (Content-Length), sizes the buffer once.
func readMIME(body io.ReadCloser, limit, size int64) (*MIME, error) {
	capacity := int64(32 << 10)
	if size > 0 {
		capacity = min(size, limit) + 1
	}
	buf := make([]byte, 0, capacity)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)] // grow
		}
		room := buf[len(buf):cap(buf)]
		if over := int64(len(buf)) + int64(len(room)) - (limit + 1); over > 0 {
			room = room[:int64(len(room))-over]
		}
		n, err := body.Read(room)
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			body.Close() // the rest is not wanted: drop the connection, not read it
			return &MIME{Raw: bytes.Clone(mime.HeaderBlock(buf[:limit])), Truncated: true}, nil
		}
		if err == io.EOF {
			return &MIME{Raw: buf}, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Header is one Internet message header as Exchange stored it.
type Header struct {
	Name  string
	Value string
}

// Headers reads the message's Internet message headers
// (internetMessageHeaders, in their order, as Exchange parsed them) and its
// arrival time, for a header-only message when the message is too large to
// download. A message that is gone fails with ErrNotFound.
func (c *Client) Headers(ctx context.Context, user, id string) ([]Header, time.Time, error) {
	const op = "graph headers"
	if user == "" || id == "" {
		return nil, time.Time{}, mail.Errorf(mail.ClassConfig, op, "empty user or message id")
	}
	r := &call{
		op: op, method: "GET", users: []string{user}, kind: tItem, perm: "Mail.Read", idempotent: true,
		url: c.resolve(userPath(user)+"/messages/"+url.PathEscape(id), query{}.add("$select", "internetMessageHeaders,receivedDateTime").String()),
	}
	var x struct {
		Received string `json:"receivedDateTime"`
		Headers  []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"internetMessageHeaders"`
	}
	if err := c.getJSON(ctx, r, &x); err != nil {
		return nil, time.Time{}, err
	}
	hs := make([]Header, 0, len(x.Headers))
	for _, h := range x.Headers {
		hs = append(hs, Header{Name: h.Name, Value: h.Value})
	}
	return hs, parseTime(x.Received), nil
}
