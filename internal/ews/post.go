// SPDX-License-Identifier: Apache-2.0

package ews

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// replayBody is a request body net/http and go-ntlmssp can send again (the
// NTLM handshake sends it up to three times) without copying it: it seeks.
type replayBody struct{ *bytes.Reader }

func (replayBody) Close() error { return nil }

// post sends one request envelope for op and returns the response if its
// status is 200; any other status becomes an error (after reading a bounded
// part of the body for a SOAP fault). The caller closes the body.
func (c *Client) post(ctx context.Context, t Target, op string, payload []byte) (*http.Response, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, replayBody{bytes.NewReader(payload)})
	if err != nil {
		return nil, opError(op, mail.ClassInternal, err)
	}
	req.ContentLength = int64(len(payload))
	req.GetBody = func() (io.ReadCloser, error) { return replayBody{bytes.NewReader(payload)}, nil }
	c.setHeaders(req, t)
	note := &authNote{}
	req = req.WithContext(context.WithValue(req.Context(), noteKey{}, note))

	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, ctxError(ctx, "ews "+op, err)
	}
	if t.Affinity != nil {
		t.Affinity.capture(resp)
	}
	if resp.StatusCode == http.StatusOK {
		return resp, nil
	}
	defer drain(resp)
	return nil, c.statusError(ctx, op, resp, note)
}

// call posts an ordinary request and decodes the bounded response into the
// response messages of op. Reads (idempotent operations) are sent once more
// when the connection broke before an answer: a pooled connection the server
// had closed ("Connection: close" under load).
func call[T checker](ctx context.Context, c *Client, t Target, op string, idempotent bool, body func(*xmlw)) ([]T, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	payload := c.envelope(t, body)
	data, err := c.exchange(ctx, t, op, payload)
	if err != nil && idempotent && ctx.Err() == nil && mail.ClassOf(err) == mail.ClassConnect {
		data, err = c.exchange(ctx, t, op, payload)
	}
	if err != nil {
		return nil, err
	}
	return decodeMessages[T](op, data)
}

// exchange posts payload and reads the whole (bounded) 200 response.
func (c *Client) exchange(ctx context.Context, t Target, op string, payload []byte) ([]byte, error) {
	resp, err := c.post(ctx, t, op, payload)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := readBounded(resp.Body, c.maxResp, op)
	if err != nil {
		return nil, ctxError(ctx, "ews "+op, err)
	}
	return data, nil
}

// errTooLarge is a response over its byte budget.
type errTooLarge struct{ limit int64 }

func (e *errTooLarge) Error() string {
	return fmt.Sprintf("response larger than %d bytes", e.limit)
}

// readBounded reads r, the response of op, to its end, failing
// (ClassProtocol) past limit bytes.
func readBounded(r io.Reader, limit int64, op string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &mail.Error{Class: mail.ClassProtocol, Op: "ews " + op, Err: &errTooLarge{limit}}
	}
	return data, nil
}

// drainLimit bounds what is read from a response nobody needs any more so
// that its connection can be reused; a longer one is closed instead.
const drainLimit = 64 << 10

func drain(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
}
