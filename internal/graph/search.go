// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Search lists the folder's messages received at or after since (all of
// them when since is zero), oldest first ($orderby=receivedDateTime asc),
// page messages per request (1 to MaxPageSize; default 100), and hands each
// page to fn, following @odata.nextLink (on BaseURL only) for at most 1,000
// pages. An error of fn stops the listing and is returned as it is. The
// mailbox's slot is not held while fn runs. For a bounded backfill; Delta
// is what tracks changes.
func (c *Client) Search(ctx context.Context, user, folder string, since time.Time, page int, fn func([]Message) error) error {
	const op = "graph search"
	if user == "" || folder == "" {
		return mail.Errorf(mail.ClassConfig, op, "empty user or folder")
	}
	if page <= 0 {
		page = 100
	}
	page = min(page, MaxPageSize)
	q := query{}.add("$select", deltaSelect)
	if !since.IsZero() {
		q = q.add("$filter", "receivedDateTime ge "+odataTime(since))
	}
	q = q.add("$orderby", "receivedDateTime asc").add("$top", strconv.Itoa(page))
	link := c.resolve(userPath(user)+"/mailFolders/"+url.PathEscape(folder)+"/messages", q.String())
	tmpl := &call{op: op, users: []string{user}, kind: tFolder, perm: "Mail.Read"}
	return pages(ctx, c, tmpl, link, func(p *messagePageJSON) error {
		ms := make([]Message, 0, len(p.Value))
		for i := range p.Value {
			if p.Value[i].ID == "" {
				return mail.Errorf(mail.ClassProtocol, op, "a message without an id")
			}
			ms = append(ms, p.Value[i].message())
		}
		if len(ms) == 0 {
			return nil
		}
		return fn(ms)
	})
}
