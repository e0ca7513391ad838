// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// SendMIME sends an RFC 5322 message as it is (POST /users/{u}/sendMail,
// the body the base64 of raw as text/plain) and Exchange saves a copy in
// Sent Items. Recipients come from its header. Graph answers 202: the
// message is queued, not yet delivered. It is never retried here: a
// connection lost after Graph took the request could otherwise send the
// message twice.
func (c *Client) SendMIME(ctx context.Context, user string, raw []byte) error {
	const op = "graph sendmail"
	if user == "" {
		return mail.Errorf(mail.ClassConfig, op, "empty user")
	}
	if len(raw) == 0 {
		return mail.Errorf(mail.ClassInternal, op, "empty message")
	}
	body := make([]byte, base64.StdEncoding.EncodedLen(len(raw)))
	base64.StdEncoding.Encode(body, raw)
	r := &call{
		op: op, method: "POST", users: []string{user}, kind: tMailbox, perm: "Mail.Send",
		url:  c.resolve(userPath(user)+"/sendMail", ""),
		body: body, ctype: "text/plain",
	}
	return c.do(ctx, r, func(*http.Response) error { return nil })
}

// AddCategory adds category to the message's categories: it reads them and,
// unless category is among them already (compared case-insensitively, as
// Outlook does), writes them back with it appended (PATCH). The write is
// conditional on the version read (If-Match with its etag); when the
// message changed in between, the read and write are repeated, at most
// three times in all.
func (c *Client) AddCategory(ctx context.Context, user, id, category string) error {
	const op = "graph category"
	if user == "" || id == "" || category == "" {
		return mail.Errorf(mail.ClassConfig, op, "empty user, message id or category")
	}
	msgURL := c.resolve(userPath(user)+"/messages/"+url.PathEscape(id), "")
	var err error
	for range 3 {
		var x struct {
			ETag       string   `json:"@odata.etag"`
			Categories []string `json:"categories"`
		}
		get := &call{
			op: op, method: "GET", users: []string{user}, kind: tItem, perm: "Mail.ReadWrite", idempotent: true,
			url: c.resolve(userPath(user)+"/messages/"+url.PathEscape(id), query{}.add("$select", "categories").String()),
		}
		if err = c.getJSON(ctx, get, &x); err != nil {
			return err
		}
		if slices.ContainsFunc(x.Categories, func(s string) bool { return strings.EqualFold(s, category) }) {
			return nil
		}
		body, _ := json.Marshal(struct {
			Categories []string `json:"categories"`
		}{append(x.Categories, category)})
		patch := &call{
			op: op, method: "PATCH", users: []string{user}, kind: tItem, perm: "Mail.ReadWrite",
			url: msgURL, body: body, ctype: "application/json",
			// The updated message is not needed; without this Graph returns
			// it whole, body included.
			prefer: []string{"return=minimal"},
		}
		if x.ETag != "" {
			patch.header = http.Header{"If-Match": {x.ETag}}
		}
		err = c.do(ctx, patch, func(*http.Response) error { return nil })
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusPreconditionFailed {
			return err
		}
	}
	return err
}
