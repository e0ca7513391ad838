// SPDX-License-Identifier: Apache-2.0

package nativeapi

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/webhook"
)

// schemas compiles openapi.json's component schemas (JSON Schema 2020-12,
// as OpenAPI 3.1 has them), with formats asserted.
func schemas(t *testing.T) (func(name string) *jsonschema.Schema, map[string]any) {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(openAPI))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	const url = "file:///openapi.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	return func(name string) *jsonschema.Schema {
		t.Helper()
		sch, err := c.Compile(url + "#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		return sch
	}, doc.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)
}

// valid checks v (any Go value, as JSON) against the named schema.
func valid(t *testing.T, compile func(string) *jsonschema.Schema, name string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if err := compile(name).Validate(inst); err != nil {
		t.Errorf("%s does not validate %s: %v", name, b, err)
	}
}

// Every example in the document validates against its schema, and the
// handler accepts the request examples as they are.
func TestOpenAPIExamplesValidate(t *testing.T) {
	compile, all := schemas(t)
	n := 0
	for name, s := range all {
		examples, _ := s.(map[string]any)["examples"].([]any)
		for _, ex := range examples {
			valid(t, compile, name, ex)
			n++
		}
	}
	if n < 10 {
		t.Fatalf("only %d examples", n)
	}
	example := func(name string, i int) string {
		b, _ := json.Marshal(all[name].(map[string]any)["examples"].([]any)[i])
		return string(b)
	}
	h, _ := newHandler(t, token)
	auth := "Bearer " + token
	if w := do(h, "POST", "/v1/accounts", auth, example("AccountRequest", 0)); w.Code != 201 {
		t.Fatalf("AccountRequest example: %d %s", w.Code, w.Body)
	}
	for i := range all["AccountPatch"].(map[string]any)["examples"].([]any) {
		if w := do(h, "PATCH", "/v1/accounts/jane", auth, example("AccountPatch", i)); w.Code != 200 {
			t.Errorf("AccountPatch example %d: %d %s", i, w.Code, w.Body)
		}
	}
	for i := range 2 {
		if w := do(h, "POST", "/v1/accounts/jane/sync", auth, example("SyncRequest", i)); w.Code != 202 {
			t.Errorf("SyncRequest example %d: %d %s", i, w.Code, w.Body)
		}
	}
	do(h, "PATCH", "/v1/accounts/jane", auth, `{"smtp":{"host":"smtp.example.com"}}`)
	if w := do(h, "POST", "/v1/accounts/jane/send", auth, example("SendRequest", 0)); w.Code != 200 {
		t.Errorf("SendRequest example: %d %s", w.Code, w.Body)
	}
	for i := range 3 {
		var ev webhook.Event
		dec := json.NewDecoder(strings.NewReader(example("Event", i)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ev); err != nil {
			t.Errorf("Event example %d does not decode into webhook.Event: %v", i, err)
		}
	}
}

// What the service produces validates against the document: accounts,
// errors, messages and every kind of event.
func TestOpenAPIDescribesAnswers(t *testing.T) {
	compile, _ := schemas(t)
	h, f := newHandler(t, token)
	auth := "Bearer " + token
	w := do(h, "POST", "/v1/accounts", auth, `{"id":"jane","email":"jane@example.com","imap":{"host":"imap.example.com","password":"pw"},
		"smtp":{"host":"smtp.example.com"},"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123","events":["message.new"]}}`)
	var v any
	_ = json.Unmarshal(w.Body.Bytes(), &v)
	valid(t, compile, "Account", v)
	do(h, "POST", "/v1/accounts/jane/sync", auth, `{"since":"2026-11-01"}`)
	w = do(h, "GET", "/v1/accounts/jane", auth, "")
	_ = json.Unmarshal(w.Body.Bytes(), &v)
	if !strings.Contains(w.Body.String(), `"sync"`) {
		t.Fatalf("no sync in %s", w.Body)
	}
	valid(t, compile, "Account", v)
	w = do(h, "POST", "/v1/accounts", auth, `{"id":"sales","email":"sales@contoso.com","exchange":{"url":"mail.contoso.com","password":"pw"},
		"webhook":{"url":"https://hooks.example.com/in","secret":"0123456789abcdef0123"}}`)
	_ = json.Unmarshal(w.Body.Bytes(), &v)
	valid(t, compile, "Account", v)
	w = do(h, "GET", "/v1/accounts/nobody", auth, "")
	_ = json.Unmarshal(w.Body.Bytes(), &v)
	valid(t, compile, "Error", v)

	raw := "From: Bob <bob@example.com>\r\nTo: jane@example.com\r\nSubject: Hi\r\nMessage-ID: <m@x>\r\n" +
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
		"--b\r\nContent-Type: application/pdf; name=a.pdf\r\nContent-Disposition: attachment\r\n\r\n%PDF\r\n--b--\r\n"
	f.messages = map[string][]byte{"INBOX/7": []byte(raw)}
	req := httptest.NewRequest("GET", "/v1/accounts/jane/messages/"+webhook.MessageKey("INBOX", "7"), nil)
	req.Header.Set("Authorization", auth)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	_ = json.Unmarshal(rec.Body.Bytes(), &v)
	valid(t, compile, "Message", v)

	msg, err := h.opts.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	msg.Folder, msg.SourceID, msg.Raw = "INBOX", "7", []byte(raw)
	now := time.Now()
	for _, ev := range []webhook.Event{
		webhook.NewMessageEvent("jane", msg, false, webhook.MessageOptions{InlineMax: -1}, now),
		webhook.NewMessageEvent("jane", msg, true, webhook.MessageOptions{}, now),
		webhook.NewStateEvent("jane", mail.Status{State: mail.StateError, ErrorClass: "auth", LastError: "no", Since: now}, now),
		webhook.NewProgressEvent("jane", mail.HistoryProgress{State: mail.HistoryDone, Found: 3, Delivered: 3, Started: now, Finished: now}, now),
	} {
		valid(t, compile, "Event", ev)
	}
	// The schema has teeth: a wrong type and a missing field are refused.
	for _, bad := range []string{`{"type":"message.old","id":"x","timestamp":"2026-12-07T00:00:00Z","account":"a"}`,
		`{"type":"message.new","id":"x","account":"a"}`} {
		inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if compile("Event").Validate(inst) == nil {
			t.Errorf("Event accepted %s", bad)
		}
	}
	if !slices.Contains(webhook.Types, webhook.TypeSyncProgress) {
		t.Fatal("types")
	}
}
