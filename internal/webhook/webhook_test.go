// SPDX-License-Identifier: Apache-2.0

package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// verify is an independent Standard Webhooks verifier, written from the
// specification: it accepts any of the space-separated v1 signatures.
func verify(secret string, id, ts string, body []byte, sigHeader string) error {
	key := []byte(secret)
	if strings.HasPrefix(secret, "whsec_") {
		k, err := base64.StdEncoding.DecodeString(secret[len("whsec_"):])
		if err != nil {
			return err
		}
		key = k
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := mac.Sum(nil)
	for _, part := range strings.Fields(sigHeader) {
		v, sig, ok := strings.Cut(part, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return fmt.Errorf("no valid signature in %q", sigHeader)
}

func TestSignatureVerifies(t *testing.T) {
	body := []byte(`{"type":"message.new","id":"msg_1"}`)
	now := time.Unix(1_700_000_000, 0)
	for _, secret := range []string{"plain-secret-of-some-length", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"} {
		h := Headers(secret, "msg_1", body, now)
		if h.Get(HeaderTimestamp) != "1700000000" || h.Get(HeaderID) != "msg_1" {
			t.Fatalf("headers %v", h)
		}
		if err := verify(secret, "msg_1", h.Get(HeaderTimestamp), body, h.Get(HeaderSignature)); err != nil {
			t.Fatalf("%s: %v", secret, err)
		}
		if err := verify(secret+"x", "msg_1", h.Get(HeaderTimestamp), body, h.Get(HeaderSignature)); err == nil {
			t.Fatal("a wrong secret verified")
		}
		if err := verify(secret, "msg_1", h.Get(HeaderTimestamp), append(body, ' '), h.Get(HeaderSignature)); err == nil {
			t.Fatal("a changed body verified")
		}
	}
}

// The Standard Webhooks specification's example: the signature of this
// payload with this secret, id and timestamp.
func TestSignatureSpecExample(t *testing.T) {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	id, ts := "msg_p5jXN8AQM9LWM0D4loKWxJek", int64(1614265330)
	body := []byte(`{"test": 2432232314}`)
	want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	if got := Sign(secret, id, ts, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestMessageEvent(t *testing.T) {
	big := make([]byte, DefaultInlineMax+1)
	msg := &mail.Message{MessageID: "<a@b>", Subject: "Hi", From: mail.Address{Name: "Bob", Address: "bob@example.com"},
		To: []mail.Address{{Address: "alice@example.com"}}, Date: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC), Text: "t",
		Attachments: []mail.Attachment{{Name: "a.txt", ContentType: "text/plain", Data: []byte("abc")}, {Name: "big.bin", Data: big}},
		Folder:      "Archive/2026", SourceID: "7", Raw: []byte("Subject: Hi\r\n\r\nt")}
	ev := NewMessageEvent("acc 1", msg, false, MessageOptions{}, time.Unix(0, 0))
	b, err := Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	m := got["message"].(map[string]any)
	atts := m["attachments"].([]any)
	key := MessageKey("Archive/2026", "7")
	if got["type"] != "message.new" || got["folder"] != "Archive/2026" || got["account"] != "acc 1" || m["date"] != "2026-11-28T10:00:00Z" ||
		m["id"] != key || m["serverId"] != "7" || got["raw"] != nil ||
		atts[0].(map[string]any)["data"] != "YWJj" || atts[1].(map[string]any)["data"] != nil ||
		atts[1].(map[string]any)["url"] != "/v1/accounts/acc%201/messages/"+key+"/attachments/1" ||
		atts[1].(map[string]any)["size"] != float64(len(big)) {
		t.Fatalf("event %s", b)
	}
	if ev.ID != EventID("acc 1", msg) || ev.ID == EventID("acc2", msg) {
		t.Fatal("event id not stable per account and message")
	}
	if f, id, ok := ParseMessageKey(key); !ok || f != "Archive/2026" || id != "7" {
		t.Fatalf("ParseMessageKey(%q) = %q %q %v", key, f, id, ok)
	}
	for _, bad := range []string{"", "!!", MessageKey("", "7"), "SU5CT1g"} {
		if _, _, ok := ParseMessageKey(bad); ok {
			t.Errorf("ParseMessageKey(%q) accepted", bad)
		}
	}

	// No inline data at all, absolute links; raw: header fields and the MIME.
	ev = NewMessageEvent("acc", msg, false, MessageOptions{InlineMax: -1, LinkBase: "https://sync.example.com/"}, time.Unix(0, 0))
	if a := ev.Message.Attachments[0]; a.Data != nil || a.URL != "https://sync.example.com/v1/accounts/acc/messages/"+key+"/attachments/0" {
		t.Fatalf("attachment %+v", a)
	}
	ev = NewMessageEvent("acc", msg, true, MessageOptions{}, time.Unix(0, 0))
	if string(ev.Raw) != string(msg.Raw) || ev.Message.Text != "" || len(ev.Message.Attachments) != 0 || ev.Message.Subject != "Hi" {
		t.Fatalf("raw event %+v", ev)
	}
}

func TestStateAndProgressEvents(t *testing.T) {
	since := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	st := mail.Status{State: mail.StateError, ErrorClass: "auth", LastError: "login refused", Since: since}
	a, b := NewStateEvent("acc", st, time.Now()), NewStateEvent("acc", st, time.Now().Add(time.Second))
	if a.ID != b.ID || a.Type != TypeAccountState || a.State.ErrorClass != "auth" || a.State.Since != "2026-12-07T03:00:00Z" {
		t.Fatalf("state events %+v %+v", a, b)
	}
	st.State = mail.StateExists
	if NewStateEvent("acc", st, time.Now()).ID == a.ID {
		t.Fatal("another state has the same event id")
	}
	p := mail.HistoryProgress{State: mail.HistoryRunning, Folder: "INBOX", Found: 10, Delivered: 3, Started: since}
	e1, e2 := NewProgressEvent("acc", p, time.Now()), NewProgressEvent("acc", p, time.Now())
	p.Delivered++
	if e1.ID != e2.ID || NewProgressEvent("acc", p, time.Now()).ID == e1.ID || e1.Progress.Found != 10 || e1.Folder != "INBOX" {
		t.Fatalf("progress events %+v", e1)
	}
}
