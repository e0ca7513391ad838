// SPDX-License-Identifier: Apache-2.0

package graph

// The receiving side of change notifications: the functions here do no I/O
// besides reading the request given to them, and hold no state; the caller
// runs the HTTP server, answers quickly (Graph waits 3 s for a notification
// and 10 s for a validation) and acts on the notifications afterwards.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Bounds of what the notification endpoint accepts.
const (
	// MaxValidationToken bounds the validationToken echoed by
	// ValidationResponse; Graph's are a sentence and a request id, well
	// under this.
	MaxValidationToken = 1 << 10
	// DefaultMaxNotificationBytes bounds a notification POST when
	// ParseNotifications gets no limit: MaxNotifications notifications
	// without resource data, at about 1 KiB each.
	DefaultMaxNotificationBytes = 2 << 20
	// MaxNotifications is the most notifications one POST may carry.
	MaxNotifications = 1000
)

// Lifecycle events, the LifecycleEvent of a Notification delivered to the
// lifecycle notification URL.
const (
	// LifecycleReauthorizationRequired: the subscription's access must be
	// confirmed soon (Reauthorize, or Renew) or Graph removes it.
	LifecycleReauthorizationRequired = "reauthorizationRequired"
	// LifecycleSubscriptionRemoved: Graph removed the subscription; create a
	// new one and run a delta round for what happened meanwhile.
	LifecycleSubscriptionRemoved = "subscriptionRemoved"
	// LifecycleMissed: Graph could not deliver some notifications; run a
	// delta round.
	LifecycleMissed = "missed"
)

// Notification is one change or lifecycle notification. A change
// notification has ChangeType; a lifecycle notification has LifecycleEvent
// and no ChangeType. Neither is authenticated by Graph: compare ClientState
// with the subscription's before acting, and treat the message id as a
// hint for a delta round, not as proof that the message exists.
type Notification struct {
	SubscriptionID string
	// ClientState is the subscription's clientState, echoed.
	ClientState string
	TenantID    string
	// ChangeType is "created", "updated" or "deleted"; empty for a
	// lifecycle notification.
	ChangeType string
	// Resource is the changed item's path, "Users/{id}/Messages/{id}".
	Resource string
	// MessageID is the message's id (resourceData.id), in the id format the
	// subscription was created with.
	MessageID string
	// LifecycleEvent is one of the Lifecycle constants (or a newer event);
	// empty for a change notification.
	LifecycleEvent      string
	SubscriptionExpires time.Time
}

type notificationJSON struct {
	SubscriptionID      string `json:"subscriptionId"`
	SubscriptionExpires string `json:"subscriptionExpirationDateTime"`
	ClientState         string `json:"clientState"`
	TenantID            string `json:"tenantId"`
	ChangeType          string `json:"changeType"`
	Resource            string `json:"resource"`
	ResourceData        *struct {
		ID string `json:"id"`
	} `json:"resourceData"`
	LifecycleEvent string `json:"lifecycleEvent"`
}

// ValidationToken reports whether r is Graph's validation request for a
// notification or lifecycle URL (a POST, or a GET, with a validationToken
// query parameter) and returns the token, URL-decoded. Answer such a
// request with ValidationResponse and nothing else: it has no
// notifications.
func ValidationToken(r *http.Request) (string, bool) {
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		return "", false
	}
	// ParseQuery rather than URL.Query: a malformed other parameter must
	// not hide the token (ParseQuery keeps what it could read).
	q, _ := url.ParseQuery(r.URL.RawQuery)
	v, ok := q["validationToken"]
	if !ok || len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// ValidationResponse answers a validation request: 200, text/plain, the
// token as it is (Graph compares it byte for byte). A token that is empty,
// longer than MaxValidationToken, not UTF-8 or with control characters is
// not what Graph sends and is answered 400, so that the endpoint reflects
// nothing arbitrary to whoever calls it. The response is marked nosniff so
// that no browser renders an echoed token as HTML.
func ValidationResponse(w http.ResponseWriter, token string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if !validToken(token) {
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "invalid validation token\n")
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(token)))
	w.WriteHeader(http.StatusOK)
	io.WriteString(w, token)
}

func validToken(s string) bool {
	if s == "" || len(s) > MaxValidationToken || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// ParseNotifications reads a notification POST's body, {"value":[…]}, of
// at most limit bytes (DefaultMaxNotificationBytes when limit <= 0) and at
// most MaxNotifications notifications. Unknown fields are ignored, so that
// rich notifications and newer properties do no harm. Every notification
// needs a subscriptionId and a changeType or lifecycleEvent. Errors are
// ClassProtocol: answer the POST with 400 (Graph retries it, a forger gives
// up).
func ParseNotifications(r io.Reader, limit int64) ([]Notification, error) {
	const op = "graph notification"
	if limit <= 0 {
		limit = DefaultMaxNotificationBytes
	}
	data, err := readBounded(op, r, limit, 0)
	if err != nil {
		var me *mail.Error
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, mail.Wrap(mail.ClassProtocol, op, err)
	}
	// The value array is decoded one element at a time, so that a body of
	// many tiny elements fails at MaxNotifications instead of growing a
	// slice far larger than the body.
	dec := json.NewDecoder(bytes.NewReader(data))
	bad := func() error { return mail.Errorf(mail.ClassProtocol, op, "the body is not a notification collection") }
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad()
	}
	var out []Notification
	seen := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad()
		}
		if key, _ := t.(string); key != "value" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return nil, bad()
			}
			continue
		}
		if seen {
			return nil, mail.Errorf(mail.ClassProtocol, op, "the body has two value arrays")
		}
		seen = true
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return nil, bad()
		}
		for dec.More() {
			if len(out) == MaxNotifications {
				return nil, mail.Errorf(mail.ClassProtocol, op, "more than %d notifications in one request", MaxNotifications)
			}
			var x notificationJSON
			if err := dec.Decode(&x); err != nil {
				return nil, mail.Errorf(mail.ClassProtocol, op, "notification %d is not the expected JSON object", len(out))
			}
			n, err := x.notification()
			if err != nil {
				return nil, mail.Errorf(mail.ClassProtocol, op, "notification %d: %v", len(out), err)
			}
			out = append(out, n)
		}
		if t, err := dec.Token(); err != nil || t != json.Delim(']') {
			return nil, bad()
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, bad()
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, mail.Errorf(mail.ClassProtocol, op, "data after the notification collection")
	}
	if !seen {
		return nil, mail.Errorf(mail.ClassProtocol, op, "the body has no value array")
	}
	return out, nil
}

func (x *notificationJSON) notification() (Notification, error) {
	switch {
	case x.SubscriptionID == "":
		return Notification{}, errors.New("no subscriptionId")
	case x.ChangeType == "" && x.LifecycleEvent == "":
		return Notification{}, errors.New("neither changeType nor lifecycleEvent")
	}
	n := Notification{
		SubscriptionID: x.SubscriptionID, ClientState: x.ClientState, TenantID: x.TenantID,
		ChangeType: x.ChangeType, Resource: x.Resource, LifecycleEvent: x.LifecycleEvent,
		SubscriptionExpires: parseTime(x.SubscriptionExpires),
	}
	if x.ResourceData != nil {
		n.MessageID = x.ResourceData.ID
	}
	return n, nil
}

// MarshalNotifications writes list as a notification collection that
// ParseNotifications reads back (what identifies a notification and its
// subscription; not its resource data). Replicas of the service hand each
// other notifications in this form.
func MarshalNotifications(list []Notification) []byte {
	out := struct {
		Value []notificationJSON `json:"value"`
	}{Value: make([]notificationJSON, len(list))}
	for i, n := range list {
		x := notificationJSON{SubscriptionID: n.SubscriptionID, ClientState: n.ClientState, TenantID: n.TenantID,
			ChangeType: n.ChangeType, Resource: n.Resource, LifecycleEvent: n.LifecycleEvent}
		if !n.SubscriptionExpires.IsZero() {
			x.SubscriptionExpires = n.SubscriptionExpires.UTC().Format(time.RFC3339Nano)
		}
		if n.MessageID != "" {
			x.ResourceData = &struct {
				ID string `json:"id"`
			}{ID: n.MessageID}
		}
		out.Value[i] = x
	}
	b, _ := json.Marshal(out) // strings and a slice only: it cannot fail
	return b
}
