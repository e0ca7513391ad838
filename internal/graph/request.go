// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// preferImmutable asks Graph for ids that survive moves within the mailbox.
const preferImmutable = `IdType="ImmutableId"`

// call is one request.
type call struct {
	op     string // for errors: "graph delta"
	method string
	url    string   // absolute
	users  []string // mailboxes whose slot the request takes (none for subscriptions)
	body   []byte
	ctype  string   // Content-Type of body
	prefer []string // preferences besides the immutable ids
	accept string   // default application/json
	header http.Header
	kind   target // what a 404 means
	perm   string // the permission a 403 names
	// idempotent requests are sent once more when the connection broke
	// before an answer (a pooled connection the server had closed).
	idempotent bool
}

// do sends r and hands a 2xx response to read; read must not keep the
// body. The mailbox slots and the request's deadline cover read too. A
// status other than 2xx becomes an error after a bounded read of the body;
// a 401 on a cached app token is tried once more with a fresh token.
func (c *Client) do(ctx context.Context, r *call, read func(*http.Response) error) error {
	if len(r.users) > 0 {
		keys := make([]string, len(r.users))
		for i, u := range r.users {
			keys[i] = mailboxKey(u)
		}
		release, err := c.slots.acquireAll(ctx, keys)
		if err != nil {
			return ctxError(ctx, r.op, err)
		}
		defer release()
	}
	ctx, cancel := context.WithTimeoutCause(ctx, c.timeout, &deadline{d: c.timeout})
	defer cancel()
	for attempt := 0; ; attempt++ {
		tok, err := c.tokens.Token(ctx)
		if err != nil {
			return tokenFailure(ctx, err)
		}
		resp, err := c.send(ctx, r, tok)
		if err != nil {
			err = ctxError(ctx, r.op, err)
			if attempt == 0 && r.idempotent && ctx.Err() == nil && mail.ClassOf(err) == mail.ClassConnect {
				continue
			}
			return err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && invalidate(c.tokens, tok) {
			drain(resp)
			continue
		}
		if resp.StatusCode/100 != 2 {
			defer drain(resp)
			return c.statusError(ctx, r, resp, tok)
		}
		err = read(resp)
		drain(resp)
		if err == nil {
			return nil
		}
		var me *mail.Error
		if errors.As(err, &me) && ctx.Err() == nil {
			return err
		}
		return ctxError(ctx, r.op, err)
	}
}

// send writes the request with its headers.
func (c *Client) send(ctx context.Context, r *call, tok string) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body) // also sets GetBody and ContentLength
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, body)
	if err != nil {
		return nil, &mail.Error{Class: mail.ClassInternal, Op: r.op, Err: errors.New("cannot build the request URL")}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	h := req.Header
	h.Set("Authorization", "Bearer "+tok)
	h.Set("Prefer", preferList(r.prefer))
	h.Set("client-request-id", newRequestID())
	h.Set("User-Agent", c.userAgent)
	accept := r.accept
	if accept == "" {
		accept = "application/json"
	}
	h.Set("Accept", accept)
	if r.body != nil {
		h.Set("Content-Type", r.ctype)
	}
	return c.hc.Do(req)
}

// preferList is the Prefer header: the immutable ids and the extras,
// comma-separated (RFC 7240 §2).
func preferList(extra []string) string {
	s := preferImmutable
	for _, p := range extra {
		s += ", " + p
	}
	return s
}

// newRequestID returns a random UUID (version 4) for client-request-id.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// maxErrorBody bounds what is read of a failed response; Graph's error
// bodies are well under 1 KiB.
const maxErrorBody = 64 << 10

// errorBody is Graph's error response.
type errorBody struct {
	Error struct {
		Code       string `json:"code"`
		Message    string `json:"message"`
		InnerError struct {
			Code            string `json:"code"`
			RequestID       string `json:"request-id"`
			ClientRequestID string `json:"client-request-id"`
		} `json:"innerError"`
	} `json:"error"`
}

// statusError classifies a response other than 2xx.
func (c *Client) statusError(ctx context.Context, r *call, resp *http.Response, tok string) error {
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if err != nil && ctx.Err() != nil {
		return ctxError(ctx, r.op, err)
	}
	return c.failureOf(r, resp.StatusCode, resp.Header, data, tok)
}

// failureOf builds the error of a failed response (a whole one, or one
// inside a $batch) from its status, headers and body.
func (c *Client) failureOf(r *call, status int, h http.Header, data []byte, tok string) error {
	// All server text is redacted, not only the message: a server may echo
	// the token in any field.
	excerpt := func(s string) string { return excerpt(redact(s, tok)) }
	e := &APIError{
		Status:          status,
		Retry:           retryAfter(h.Get("Retry-After"), c.now()),
		RequestID:       excerpt(h.Get("request-id")),
		ClientRequestID: excerpt(h.Get("client-request-id")),
	}
	var eb errorBody
	if json.Unmarshal(data, &eb) == nil && (eb.Error.Code != "" || eb.Error.Message != "") {
		e.Code = excerpt(eb.Error.Code)
		e.Message = excerpt(eb.Error.Message)
		e.InnerCode = excerpt(eb.Error.InnerError.Code)
		if e.RequestID == "" {
			e.RequestID = excerpt(eb.Error.InnerError.RequestID)
		}
		if e.ClientRequestID == "" {
			e.ClientRequestID = excerpt(eb.Error.InnerError.ClientRequestID)
		}
	} else if len(bytes.TrimSpace(data)) > 0 {
		text := redact(string(data[:min(len(data), 4<<10)]), tok)
		e.Message = "non-JSON body: " + excerpt(text[:min(len(text), 120)])
	}
	f := failure{status: status, code: e.Code, message: e.Message, kind: r.kind, perm: r.perm, tokenKind: tokenKind(c.tokens, tok)}
	class, is, hint := f.classify()
	for _, s := range is {
		if s == ErrSyncReset {
			re := &ResetError{Status: status, Code: e.Code}
			if loc := h.Get("Location"); loc != "" {
				if _, err := c.checkLink(r.op, loc); err == nil {
					re.Location = loc
				}
			}
			return &mail.Error{Class: class, Op: r.op, Err: re}
		}
	}
	e.Hint, e.is = hint, is
	return &mail.Error{Class: class, Op: r.op, Err: e}
}

// redact blanks secret out of server text quoted in an error: a confused
// or hostile server may echo the bearer token (or a token endpoint the
// client secret), and errors end up in logs and in the status shown to
// users.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// drainLimit bounds what is read from a response nobody needs any more so
// that its connection can be reused; a longer one is closed instead.
const drainLimit = 64 << 10

func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
}

// errTooLarge is a response over its byte budget.
type errTooLarge struct{ limit int64 }

func (e *errTooLarge) Error() string { return fmt.Sprintf("response larger than %d bytes", e.limit) }

// readBounded reads r to its end, failing (ClassProtocol) past limit bytes.
// hint, when positive, sizes the buffer (Content-Length).
func readBounded(op string, r io.Reader, limit, hint int64) ([]byte, error) {
	if hint <= 0 || hint > limit {
		hint = 512
	}
	buf := bytes.NewBuffer(make([]byte, 0, hint+1))
	n, err := buf.ReadFrom(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: op, Err: &errTooLarge{limit}}
	}
	return buf.Bytes(), nil
}

// getJSON runs a GET (or another request of r) and decodes its bounded JSON
// response into v.
func (c *Client) getJSON(ctx context.Context, r *call, v any) error {
	return c.do(ctx, r, func(resp *http.Response) error {
		data, err := readBounded(r.op, resp.Body, c.maxResp, resp.ContentLength)
		if err != nil {
			return err
		}
		return decodeJSON(r.op, data, v)
	})
}

// decodeJSON decodes a response body; a body that is not the expected
// JSON is ClassProtocol.
func decodeJSON(op string, data []byte, v any) error {
	if err := json.Unmarshal(data, v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return mail.Errorf(mail.ClassProtocol, op, "the response is not JSON (at byte %d)", se.Offset)
		case errors.As(err, &te):
			return mail.Errorf(mail.ClassProtocol, op, "the response has a %s where %s was expected (%s)", te.Value, te.Type, te.Field)
		}
		return mail.Errorf(mail.ClassProtocol, op, "the response is not the expected JSON")
	}
	return nil
}
