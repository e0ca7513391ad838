// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Message is a message as a delta or listing page reports it.
type Message struct {
	ID                string    // immutable id
	Received          time.Time // receivedDateTime; zero for a removed message
	InternetMessageID string    // the Message-ID header, when reported
	// Removed: the message left the folder (deleted, or moved elsewhere:
	// Graph says "deleted" or "changed"); only ID is set.
	Removed bool
}

// DeltaPage is one page of a delta round. Exactly one of Next and
// DeltaLink is set.
type DeltaPage struct {
	Messages []Message
	// Next is the @odata.nextLink: the round goes on; call Delta with it at
	// once (even when Messages is empty).
	Next string
	// DeltaLink is the @odata.deltaLink: the round is complete. Persist it
	// once the messages are handled and pass it to Delta at the next check.
	DeltaLink string
}

// MaxPageSize is the largest page Graph serves for messages.
const MaxPageSize = 1000

// deltaSelect is what delta pages report of a message.
const deltaSelect = "id,receivedDateTime,internetMessageId"

type messageJSON struct {
	ID                string `json:"id"`
	Received          string `json:"receivedDateTime"`
	InternetMessageID string `json:"internetMessageId"`
	Removed           *struct {
		Reason string `json:"reason"`
	} `json:"@removed"`
}

func (x *messageJSON) message() Message {
	m := Message{ID: x.ID, InternetMessageID: x.InternetMessageID, Removed: x.Removed != nil}
	if !m.Removed {
		m.Received = parseTime(x.Received)
	}
	return m
}

type messagePageJSON struct {
	Value     []messageJSON `json:"value"`
	NextLink  string        `json:"@odata.nextLink"`
	DeltaLink string        `json:"@odata.deltaLink"`
}

func (p *messagePageJSON) next() string { return p.NextLink }

// Delta reads one page of the folder's delta round. With link "" it starts
// a round (messages/delta, $select of id, receivedDateTime and
// internetMessageId, and, when since is not zero, $filter=receivedDateTime
// ge since, with which Graph reports at most 5,000 messages); otherwise it
// GETs link, a Next or DeltaLink of an earlier page, as it is (the link
// encodes the round's options). A link that is not on BaseURL's scheme and
// host is refused (ErrLinkRefused, ClassProtocol): the token is never sent
// elsewhere. pageSize > 0 asks for at most that many messages per page
// (Prefer: odata.maxpagesize; capped at MaxPageSize).
//
// Every kind of change is reported, not only arrivals: the request does not
// add changeType=created, so that a caller also learns which messages left
// the folder (Removed) and keeps one link per folder whatever it filters.
// Callers tell new messages apart themselves (ids already seen, Received),
// since updates to a known message arrive as well. With
// since set, the first round lists the folder's messages received since
// then (a bounded backfill) and later rounds the changes after it.
//
// ErrSyncReset (a *ResetError) means the link is dead: persist nothing,
// call Delta with link "" (or the ResetError's Location). A folder that no
// longer exists fails with ErrNotFound (ClassConfig).
func (c *Client) Delta(ctx context.Context, user, folder, link string, since time.Time, pageSize int) (*DeltaPage, error) {
	return c.DeltaOf(ctx, DeltaRequest{User: user, Folder: folder, Link: link, Since: since, PageSize: pageSize})
}

// DeltaOf is Delta with its arguments in a DeltaRequest, which can also ask
// for one kind of change only (changeType=created: arrivals, including
// messages moved into the folder, and not the updates a category or a read
// flag makes).
func (c *Client) DeltaOf(ctx context.Context, q DeltaRequest) (*DeltaPage, error) {
	const op = "graph delta"
	r, err := c.deltaCall(q)
	if err != nil {
		return nil, err
	}
	var p messagePageJSON
	if err := c.getJSON(ctx, r, &p); err != nil {
		return nil, err
	}
	return c.deltaPage(op, &p)
}

// deltaCall builds the request of Delta (also used inside a $batch).
func (c *Client) deltaCall(d DeltaRequest) (*call, error) {
	const op = "graph delta"
	user, folder, link, since, pageSize := d.User, d.Folder, d.Link, d.Since, d.PageSize
	if user == "" {
		return nil, mail.Errorf(mail.ClassConfig, op, "empty user")
	}
	r := &call{op: op, method: "GET", users: []string{user}, kind: tFolder, perm: "Mail.Read", idempotent: true}
	if pageSize > 0 {
		r.prefer = []string{"odata.maxpagesize=" + strconv.Itoa(min(pageSize, MaxPageSize))}
	}
	if link != "" {
		if _, err := c.checkLink(op, link); err != nil {
			return nil, err
		}
		r.url = link
		return r, nil
	}
	if folder == "" {
		return nil, mail.Errorf(mail.ClassConfig, op, "empty folder")
	}
	q := query{}.add("$select", deltaSelect)
	if !since.IsZero() {
		q = q.add("$filter", "receivedDateTime ge "+odataTime(since))
	}
	switch d.ChangeType {
	case "":
	case "created", "updated", "deleted":
		q = q.add("changeType", d.ChangeType)
	default:
		return nil, mail.Errorf(mail.ClassInternal, op, "unknown change type %q", d.ChangeType)
	}
	r.url = c.resolve(userPath(user)+"/mailFolders/"+url.PathEscape(folder)+"/messages/delta", q.String())
	return r, nil
}

// deltaPage checks a decoded page: one link, on BaseURL, and ids.
func (c *Client) deltaPage(op string, p *messagePageJSON) (*DeltaPage, error) {
	switch {
	case p.NextLink == "" && p.DeltaLink == "":
		return nil, mail.Errorf(mail.ClassProtocol, op, "a delta page without @odata.nextLink or @odata.deltaLink")
	case p.NextLink != "" && p.DeltaLink != "":
		return nil, mail.Errorf(mail.ClassProtocol, op, "a delta page with both @odata.nextLink and @odata.deltaLink")
	}
	for _, l := range []string{p.NextLink, p.DeltaLink} {
		if l != "" {
			if _, err := c.checkLink(op, l); err != nil {
				return nil, err
			}
		}
	}
	out := &DeltaPage{Next: p.NextLink, DeltaLink: p.DeltaLink, Messages: make([]Message, 0, len(p.Value))}
	for i := range p.Value {
		if p.Value[i].ID == "" {
			return nil, mail.Errorf(mail.ClassProtocol, op, "a message without an id")
		}
		out.Messages = append(out.Messages, p.Value[i].message())
	}
	return out, nil
}

// parseTime reads a Graph DateTimeOffset ("2026-03-01T09:30:00Z"); zero
// when absent or unreadable.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}
