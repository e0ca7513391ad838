// SPDX-License-Identifier: Apache-2.0

package graph

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func TestSubscribe(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var got map[string]string
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1.0/subscriptions" || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
		}
		got = map[string]string{}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			t.Error(err)
		}
		resp := map[string]any{"id": "sub-1", "expirationDateTime": "2026-03-03T10:00:00.0000000Z"}
		for k, v := range got {
			if k != "expirationDateTime" {
				resp[k] = v
			}
		}
		writeJSON(w, http.StatusCreated, resp)
	}))
	c.now = func() time.Time { return now }
	sub, err := c.Subscribe(t.Context(), "u@x.com", "AAMk'1", "https://hook.example/n", "https://hook.example/l", "state-1", now.Add(48*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"changeType": "created", "notificationUrl": "https://hook.example/n", "lifecycleNotificationUrl": "https://hook.example/l",
		"resource": "users/u@x.com/mailFolders('AAMk''1')/messages", "clientState": "state-1", "expirationDateTime": "2026-03-03T10:00:00Z",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("body %v", got)
	}
	if sub.ID != "sub-1" || sub.ClientState != "state-1" || sub.LifecycleURL != "https://hook.example/l" ||
		!sub.Expires.Equal(time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)) || sub.ChangeType != "created" {
		t.Errorf("subscription %+v", sub)
	}

	// Too long a lifetime (and zero) is shortened to the maximum; no
	// lifecycle URL leaves the field out.
	for _, exp := range []time.Time{{}, now.Add(7 * 24 * time.Hour)} {
		if _, err := c.Subscribe(t.Context(), "u", "inbox", "https://hook.example/n", "", "s", exp); err != nil {
			t.Fatal(err)
		}
		want := now.Add(MaxSubscriptionLifetime - time.Minute).Format(time.RFC3339)
		if got["expirationDateTime"] != want {
			t.Errorf("expiration %q, want %q", got["expirationDateTime"], want)
		}
		if _, ok := got["lifecycleNotificationUrl"]; ok {
			t.Errorf("empty lifecycle URL sent")
		}
	}
}

func TestSubscribeRefused(t *testing.T) {
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		graphError(w, 400, "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.")
	}))
	_, err := c.Subscribe(t.Context(), "u", "inbox", "https://hook.example/n", "", "s", time.Time{})
	requireClass(t, err, mail.ClassConfig)

	for _, tc := range []struct{ user, folder, n, l, state string }{
		{"", "inbox", "https://h/n", "", "s"},
		{"u", "", "https://h/n", "", "s"},
		{"u", "inbox", "ftp://h/n", "", "s"},
		{"u", "inbox", "/relative", "", "s"},
		{"u", "inbox", "https://user:pw@h/n", "", "s"},
		{"u", "inbox", "https://h/n", "nope", "s"},
		{"u", "inbox", "https://h/n", "", string(make([]byte, 129))},
	} {
		_, err := c.Subscribe(t.Context(), tc.user, tc.folder, tc.n, tc.l, tc.state, time.Time{})
		requireClass(t, err, mail.ClassConfig)
	}
}

func TestRenewReauthorizeUnsubscribe(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var calls []string
	status := 0
	c, _ := newClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := readAllLimit(r, 1<<20)
		calls = append(calls, r.Method+" "+r.URL.Path+" "+string(b))
		if status != 0 {
			graphError(w, status, "ResourceNotFound", "gone")
			return
		}
		switch r.Method {
		case "PATCH":
			writeJSON(w, 200, map[string]any{"id": "s/1", "expirationDateTime": "2026-03-02T09:00:00Z"})
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	c.now = func() time.Time { return now }
	ctx := t.Context()
	exp, err := c.Renew(ctx, "s/1", now.Add(24*time.Hour))
	if err != nil || !exp.Equal(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("Renew = %v, %v", exp, err)
	}
	if err := c.Reauthorize(ctx, "s/1"); err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(ctx, "s/1"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`PATCH /v1.0/subscriptions/s/1 {"expirationDateTime":"2026-03-02T10:00:00Z"}`,
		"POST /v1.0/subscriptions/s/1/reauthorize ",
		"DELETE /v1.0/subscriptions/s/1 ",
	}
	for i := range want {
		if i >= len(calls) || calls[i] != want[i] {
			t.Fatalf("calls %q, want %q", calls, want)
		}
	}

	status = 404
	if err := c.Unsubscribe(ctx, "s1"); err != nil {
		t.Fatalf("Unsubscribe of a gone subscription: %v", err)
	}
	_, err = c.Renew(ctx, "s1", time.Time{})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Renew of a gone subscription: %v", err)
	}
	requireClass(t, err, mail.ClassProtocol)
	if err := c.Reauthorize(ctx, "s1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Reauthorize of a gone subscription: %v", err)
	}
	status = 500
	if err := c.Unsubscribe(ctx, "s1"); err == nil {
		t.Fatal("Unsubscribe hid a server error")
	}
}
