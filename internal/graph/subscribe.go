// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// MaxSubscriptionLifetime is the longest lifetime Graph grants a
// subscription to Outlook messages without resource data (4,230 minutes,
// under three days); a longer expiration is refused with 400, so Subscribe
// and Renew shorten it to this.
const MaxSubscriptionLifetime = 4230 * time.Minute

// MaxClientState is the longest clientState Graph accepts.
const MaxClientState = 128

// lifetimeMargin keeps a requested expiration this much under
// MaxSubscriptionLifetime, for the time the request travels and for the
// difference between our clock and Graph's.
const lifetimeMargin = time.Minute

// Subscription is a change notification subscription as Graph confirmed it.
type Subscription struct {
	ID              string // the subscription's id: the key of Renew, Reauthorize and Unsubscribe
	Resource        string // what is watched, "users/{user}/mailFolders('{folder}')/messages"
	ChangeType      string // "created"
	NotificationURL string // where change notifications are POSTed
	LifecycleURL    string // where lifecycle notifications are POSTed; empty when none
	// ClientState is the secret every notification of this subscription
	// echoes; the receiver compares it before trusting a notification.
	ClientState string
	Expires     time.Time // expirationDateTime as Graph granted it
}

type subscriptionJSON struct {
	ID              string `json:"id,omitempty"`
	Resource        string `json:"resource,omitempty"`
	ChangeType      string `json:"changeType,omitempty"`
	NotificationURL string `json:"notificationUrl,omitempty"`
	LifecycleURL    string `json:"lifecycleNotificationUrl,omitempty"`
	ClientState     string `json:"clientState,omitempty"`
	Expires         string `json:"expirationDateTime,omitempty"`
}

func (x *subscriptionJSON) subscription() Subscription {
	return Subscription{
		ID: x.ID, Resource: x.Resource, ChangeType: x.ChangeType, NotificationURL: x.NotificationURL,
		LifecycleURL: x.LifecycleURL, ClientState: x.ClientState, Expires: parseTime(x.Expires),
	}
}

// Subscribe asks Graph to POST a change notification to notificationURL
// whenever a message is created in the folder (an id or a well-known name)
// of the user's mailbox, until expires (POST /subscriptions, changeType
// "created"). Before it answers, Graph POSTs a validation request to
// notificationURL, and to lifecycleURL when that is not empty, and the
// endpoint must echo its token (ValidationResponse) within 10 seconds; so
// the endpoint must be serving before Subscribe is called. Graph requires
// public HTTPS URLs; http is let through for test servers. The lifecycle
// URL cannot be added later, and without it Graph drops an expiring
// subscription without warning (reauthorizationRequired, missed).
//
// clientState (at most MaxClientState characters, recommended random) is
// echoed in every notification: compare it before acting on one. expires
// later than MaxSubscriptionLifetime from now is shortened to that; zero
// asks for the longest. The request counts against the mailbox's
// concurrency, and is not repeated on a lost connection (that could leave
// two subscriptions).
//
// Errors: a failed validation is ClassConfig; a folder or mailbox that does
// not exist ErrNotFound (ClassConfig); other Graph errors as for any
// request.
func (c *Client) Subscribe(ctx context.Context, user, folder, notificationURL, lifecycleURL, clientState string, expires time.Time) (Subscription, error) {
	const op = "graph subscribe"
	switch {
	case user == "" || folder == "":
		return Subscription{}, mail.Errorf(mail.ClassConfig, op, "empty user or folder")
	case !webURL(notificationURL):
		return Subscription{}, mail.Errorf(mail.ClassConfig, op, "the notification URL must be an absolute http(s) URL (Graph requires https)")
	case lifecycleURL != "" && !webURL(lifecycleURL):
		return Subscription{}, mail.Errorf(mail.ClassConfig, op, "the lifecycle notification URL must be an absolute http(s) URL (Graph requires https)")
	case utf8.RuneCountInString(clientState) > MaxClientState:
		return Subscription{}, mail.Errorf(mail.ClassConfig, op, "the client state is longer than %d characters", MaxClientState)
	}
	resource := "users/" + url.PathEscape(user) + "/mailFolders('" + strings.ReplaceAll(folder, "'", "''") + "')/messages"
	body, err := json.Marshal(&subscriptionJSON{
		ChangeType: "created", NotificationURL: notificationURL, LifecycleURL: lifecycleURL,
		Resource: resource, ClientState: clientState, Expires: odataTime(c.expiry(expires)),
	})
	if err != nil {
		return Subscription{}, mail.Wrap(mail.ClassInternal, op, err)
	}
	r := &call{
		op: op, method: "POST", users: []string{user}, kind: tSubscribe, perm: "Mail.Read",
		url: c.resolve("/subscriptions", ""), body: body, ctype: "application/json",
	}
	var x subscriptionJSON
	if err := c.getJSON(ctx, r, &x); err != nil {
		return Subscription{}, err
	}
	if x.ID == "" {
		return Subscription{}, mail.Errorf(mail.ClassProtocol, op, "the subscription has no id")
	}
	return x.subscription(), nil
}

// Renew moves the subscription's expiration to expires (PATCH
// /subscriptions/{id}; shortened to MaxSubscriptionLifetime from now, zero
// asks for the longest) and returns the expiration Graph granted. A
// subscription Graph no longer knows fails with ErrNotFound
// (ClassProtocol): subscribe again and run a delta round for what was
// missed.
func (c *Client) Renew(ctx context.Context, id string, expires time.Time) (time.Time, error) {
	const op = "graph renew"
	if id == "" {
		return time.Time{}, mail.Errorf(mail.ClassConfig, op, "empty subscription id")
	}
	want := c.expiry(expires)
	body, err := json.Marshal(&subscriptionJSON{Expires: odataTime(want)})
	if err != nil {
		return time.Time{}, mail.Wrap(mail.ClassInternal, op, err)
	}
	r := &call{
		op: op, method: "PATCH", kind: tSubscription, perm: "Mail.Read", idempotent: true,
		url: c.resolve("/subscriptions/"+url.PathEscape(id), ""), body: body, ctype: "application/json",
	}
	var x subscriptionJSON
	err = c.do(ctx, r, func(resp *http.Response) error {
		data, err := readBounded(op, resp.Body, c.maxResp, resp.ContentLength)
		if err != nil || len(data) == 0 {
			return err // 204 without the subscription is taken as granted
		}
		return decodeJSON(op, data, &x)
	})
	if err != nil {
		return time.Time{}, err
	}
	if t := parseTime(x.Expires); !t.IsZero() {
		return t, nil
	}
	return want, nil
}

// Reauthorize answers a reauthorizationRequired lifecycle notification
// (POST /subscriptions/{id}/reauthorize): Graph checks the app's access
// again and keeps the subscription. A subscription Graph no longer knows
// fails with ErrNotFound (ClassProtocol).
func (c *Client) Reauthorize(ctx context.Context, id string) error {
	const op = "graph reauthorize"
	if id == "" {
		return mail.Errorf(mail.ClassConfig, op, "empty subscription id")
	}
	r := &call{
		op: op, method: "POST", kind: tSubscription, perm: "Mail.Read", idempotent: true,
		url: c.resolve("/subscriptions/"+url.PathEscape(id)+"/reauthorize", ""),
	}
	return c.do(ctx, r, func(*http.Response) error { return nil })
}

// Unsubscribe deletes the subscription (DELETE /subscriptions/{id}). One
// that is already gone (expired, removed by Graph) counts as deleted.
func (c *Client) Unsubscribe(ctx context.Context, id string) error {
	const op = "graph unsubscribe"
	if id == "" {
		return mail.Errorf(mail.ClassConfig, op, "empty subscription id")
	}
	r := &call{
		op: op, method: "DELETE", kind: tSubscription, perm: "Mail.Read", idempotent: true,
		url: c.resolve("/subscriptions/"+url.PathEscape(id), ""),
	}
	err := c.do(ctx, r, func(*http.Response) error { return nil })
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// expiry is the expiration to ask for: t, at most MaxSubscriptionLifetime
// (less a margin) from now; zero means that longest one.
func (c *Client) expiry(t time.Time) time.Time {
	longest := c.now().Add(MaxSubscriptionLifetime - lifetimeMargin)
	if t.IsZero() || t.After(longest) {
		return longest.Truncate(time.Second)
	}
	return t
}

// webURL reports whether s is an absolute http(s) URL without credentials.
func webURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.User == nil && len(s) <= 2048
}
