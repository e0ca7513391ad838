// SPDX-License-Identifier: Apache-2.0

package service

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// recorder records what the sink posts.
type recorder struct {
	ops, targets []string
	bodies       [][]byte
	headers      []http.Header
	patience     []time.Duration
}

func (r *recorder) Post(_ context.Context, op, target string, body []byte) error {
	r.ops, r.targets, r.bodies = append(r.ops, op), append(r.targets, target), append(r.bodies, body)
	return nil
}

func (r *recorder) PostWithin(ctx context.Context, op, target string, body []byte, _ time.Duration) error {
	return r.Post(ctx, op, target, body)
}

func (r *recorder) PostSigned(_ context.Context, op, target string, body []byte, headers func() http.Header, patience time.Duration) error {
	r.ops, r.targets, r.bodies = append(r.ops, op), append(r.targets, target), append(r.bodies, body)
	r.headers, r.patience = append(r.headers, headers()), append(r.patience, patience)
	return nil
}

func TestSinkRoutesNativeMailboxesToTheirWebhook(t *testing.T) {
	creatio, hooks := &recorder{}, &recorder{}
	s := &Sink{Post: creatio, Webhook: hooks}
	msg := &mail.Message{MessageID: "<m@x>", Subject: "Hi", Text: "t", Folder: "INBOX", SourceID: "4"}
	native := &mail.Mailbox{ID: "n1", Kind: mail.ServerIMAP, Client: mail.ClientNative,
		WebhookURL: "https://hooks.example.com/in", WebhookSecret: "plain-secret-0123456789"}
	ctx := context.Background()
	if err := s.Deliver(ctx, native, msg); err != nil {
		t.Fatal(err)
	}
	if err := s.DeliverWithin(time.Second)(ctx, native, msg); err != nil {
		t.Fatal(err)
	}
	if err := s.ReportState(ctx, native, nil); err != nil {
		t.Fatal(err)
	}
	if len(creatio.ops) != 0 || len(hooks.ops) != 2 || hooks.targets[0] != native.WebhookURL || hooks.ops[0] != "WebhookMessage" ||
		hooks.patience[0] != 0 || hooks.patience[1] != time.Second {
		t.Fatalf("creatio %v, webhook %v %v %v", creatio.ops, hooks.ops, hooks.targets, hooks.patience)
	}
	h, body := hooks.headers[0], hooks.bodies[0]
	mac := hmac.New(sha256.New, []byte(native.WebhookSecret))
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "." + string(body)))
	if want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil)); h.Get("webhook-signature") != want {
		t.Fatalf("signature %q, want %q", h.Get("webhook-signature"), want)
	}
	var ev map[string]any
	if err := json.Unmarshal(body, &ev); err != nil || ev["type"] != "message.new" || ev["id"] != h.Get("webhook-id") ||
		ev["account"] != "n1" || ev["folder"] != "INBOX" {
		t.Fatalf("event %s: %v", body, err)
	}
	if hooks.headers[1].Get("webhook-id") != h.Get("webhook-id") {
		t.Error("the same message got another event id")
	}

	// A Creatio mailbox keeps its path.
	cm := &mail.Mailbox{ID: "c1", Kind: mail.ServerIMAP,
		Endpoint: "https://crm.example.com/0/ServiceModel/ExchangeListenerService.svc/ProcessFullEmail"}
	if err := s.Deliver(ctx, cm, msg); err != nil {
		t.Fatal(err)
	}
	if len(creatio.ops) != 1 || creatio.ops[0] != "ProcessFullEmail" || !strings.HasSuffix(creatio.targets[0], "/ProcessFullEmail") || len(hooks.ops) != 2 {
		t.Fatalf("creatio %v %v, webhook %v", creatio.ops, creatio.targets, hooks.ops)
	}
}
