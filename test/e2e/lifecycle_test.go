// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"
)

// richMail is a multipart/mixed message with a multipart/related HTML body that
// references an inline PNG by cid, plus a PDF attachment.
func richMail(msgID string) (raw []byte, png, pdf []byte) {
	png = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake image bytes \x00\x01\x02")
	pdf = []byte("%PDF-1.4\n% fake pdf with \x00 binary \xff bytes\n%%EOF\n")
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("From: =?UTF-8?B?0JHQvtCx?= Sender <bob@example.com>\r\n")
	w("To: Alice <alice@example.com>, carol@example.com\r\n")
	w("Cc: Dave <dave@example.com>\r\n")
	w("Bcc: eve@example.com\r\n")
	w("Subject: =?UTF-8?B?0J/RgNC40LLQtdGCLCDQvNC40YAh?= rich\r\n") // "Привет, мир!" rich
	w("Date: Sat, 28 Nov 2026 12:34:56 +0300\r\n")
	w("Message-ID: <%s>\r\n", msgID)
	w("In-Reply-To: <parent@example.com>\r\n")
	w("References: <root@example.com>\r\n <parent@example.com>\r\n")
	w("X-Priority: 1 (Highest)\r\n")
	w("X-Custom-Header: custom value\r\n")
	w("MIME-Version: 1.0\r\n")
	w("Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n")
	w("--outer\r\nContent-Type: multipart/related; boundary=\"rel\"\r\n\r\n")
	w("--rel\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	var qp bytes.Buffer
	qw := quotedprintable.NewWriter(&qp)
	_, _ = qw.Write([]byte(`<html><body><p>Здравствуйте!</p><img src="cid:logo123@example.com"></body></html>`))
	_ = qw.Close()
	w("%s\r\n", qp.String())
	w("--rel\r\nContent-Type: image/png; name=\"logo.png\"\r\nContent-Transfer-Encoding: base64\r\n")
	w("Content-ID: <logo123@example.com>\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\r\n%s\r\n", base64.StdEncoding.EncodeToString(png))
	w("--rel--\r\n")
	w("--outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n")
	w("Content-Disposition: attachment; filename=\"report.pdf\"\r\n\r\n%s\r\n", base64.StdEncoding.EncodeToString(pdf))
	w("--outer--\r\n")
	return b.Bytes(), png, pdf
}

// TestLifecycle walks the acceptance timeline of the core issue: create with
// Creatio's unquoted-key body, exists, a rich email delivered with every field,
// Dovecot restarted with mail arriving while it is down, a wrong password
// reported through ProcessMailboxState, and close.
func TestLifecycle(t *testing.T) {
	e := newEnv(t, nil)
	const id = "0b6b5b4e-8f5a-4a5e-9a3e-1d2c3b4a5f60"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: id, User: "alice@example.com", Password: "alicepw"}))
	e.waitState(id, "exists", 10*time.Second)

	// 1. A rich email arrives complete and in Creatio's shape.
	raw, png, pdf := richMail("rich-1@example.com")
	e.appendMail("alice@example.com", "alicepw", "INBOX", raw)
	got := e.waitEmails("Привет", 1, 10*time.Second)[0]
	checkRichEmail(t, got.Data, png, pdf)
	sub := got.Subscription
	for k, want := range map[string]any{"Id": id, "MailboxId": id, "SysAdminUnit": "Supervisor", "WorkspaceName": "Default", "TimeZoneId": "Russian Standard Time"} {
		if sub[k] != want {
			t.Errorf("SubscriptionInfo.%s = %v, want %v", k, sub[k], want)
		}
	}
	if ts, _ := sub["EventTimeStamp"].(float64); ts < 6.39e17 {
		t.Errorf("SubscriptionInfo.EventTimeStamp = %v, want .NET ticks of now", sub["EventTimeStamp"])
	}
	if n := len(e.col.Requests("ProcessBinarySerializedEmail")); n != 0 {
		t.Errorf("ProcessBinarySerializedEmail called %d times", n)
	}

	// 2. Dovecot goes down; mail arrives meanwhile; after the restart it is
	// delivered exactly once.
	if err := e.dc.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dc.DeliverFile("alice@example.com", "INBOX", simpleMail("while-down-1", "down-1@example.com")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.dc.DeliverFile("alice@example.com", "INBOX", simpleMail("while-down-2", "down-2@example.com")); err != nil {
		t.Fatal(err)
	}
	st := e.waitState(id, "error", 10*time.Second)
	if st["ErrorClass"] == "" || st["LastError"] == "" {
		t.Errorf("error state without reason: %v", st)
	}
	if err := e.dc.Restart(); err != nil {
		t.Fatal(err)
	}
	e.waitState(id, "exists", 15*time.Second)
	e.waitEmails("while-down-", 2, 15*time.Second)
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("after-restart", "after@example.com"))
	e.waitEmails("after-restart", 1, 10*time.Second)
	for _, p := range []string{"while-down-1", "while-down-2", "after-restart", "Привет"} {
		if n := len(e.emails(p)); n != 1 {
			t.Errorf("%q delivered %d times, want exactly once", p, n)
		}
	}

	// 3. A wrong password: ProcessMailboxState says unavailable, state is not exists.
	const bad = "7d7c7b7a-0000-4000-8000-000000000001"
	e.mustPost("/api/listeners/recreate", e.createBody(mailboxSpec{ID: bad, User: "bob@example.com", Password: wrongPassword,
		Context: "{UserRequested:false,HasError:true}"}))
	st = e.waitState(bad, "error", 10*time.Second)
	if st["ErrorClass"] != "auth" || !strings.Contains(fmt.Sprint(st["ExceptionClassName"]), "AuthenticationException") {
		t.Errorf("wrong password state = %v", st)
	}
	reports := e.waitRequests("ProcessMailboxState", 1)
	var report map[string]any
	for _, r := range reports {
		if r.JSON["MailboxId"] == bad {
			report = r.JSON
		}
	}
	if report == nil {
		t.Fatalf("no ProcessMailboxState for %s: %v", bad, reports)
	}
	for k, want := range map[string]any{"Avaliable": false, "SenderEmailAddress": "bob@example.com", "BpmUserName": "Supervisor",
		"BpmUserWorkspace": "Default", "Context": "{UserRequested:false,HasError:true}"} {
		if report[k] != want {
			t.Errorf("ProcessMailboxState.%s = %v, want %v", k, report[k], want)
		}
	}
	if !strings.HasSuffix(fmt.Sprint(report["ExceptionClassName"]), "AuthenticationException") || report["ExceptionMessage"] == "" {
		t.Errorf("ProcessMailboxState class/message = %v / %v", report["ExceptionClassName"], report["ExceptionMessage"])
	}
	// Reported once per change, not once per retry.
	time.Sleep(700 * time.Millisecond)
	if n := countFor(e.col.Requests("ProcessMailboxState"), bad); n != 1 {
		t.Errorf("ProcessMailboxState sent %d times for one unchanged failure, want 1", n)
	}
	// Fixing the password with recreate recovers, and recovery is reported.
	e.mustPost("/api/listeners/recreate", e.createBody(mailboxSpec{ID: bad, User: "bob@example.com", Password: "bobpw"}))
	e.waitState(bad, "exists", 10*time.Second)
	e.waitRequestsFor("ProcessMailboxState", bad, func(m map[string]any) bool { return m["Avaliable"] == true })

	// 4. Close stops the subscription: state closed, new mail no longer delivered.
	e.mustPost("/api/listeners/close", `["`+id+`"]`)
	if s := e.state(id); s["State"] != "closed" {
		t.Fatalf("after close state = %v", s)
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("after-close", "closed@example.com"))
	e.appendMail("bob@example.com", "bobpw", "INBOX", simpleMail("bob-still-live", "bob-live@example.com"))
	e.waitEmails("bob-still-live", 1, 10*time.Second) // a later event, so "after-close" had its chance
	if n := len(e.emails("after-close")); n != 0 {
		t.Errorf("mail delivered after close: %d", n)
	}
}

func countFor(reqs []testenvRequest, id string) int {
	n := 0
	for _, r := range reqs {
		if r.JSON["MailboxId"] == id {
			n++
		}
	}
	return n
}

func checkRichEmail(t *testing.T, m map[string]any, png, pdf []byte) {
	t.Helper()
	str := func(k string) string { s, _ := m[k].(string); return s }
	list := func(k string) []string {
		var out []string
		for _, v := range m[k].([]any) {
			out = append(out, v.(string))
		}
		return out
	}
	if got := str("Subject"); got != "Привет, мир! rich" {
		t.Errorf("Subject = %q", got)
	}
	if got := str("Sender"); got != "Боб Sender <bob@example.com>" {
		t.Errorf("Sender = %q", got)
	}
	if got := strings.Join(list("Recepients"), "|"); !strings.Contains(got, "alice@example.com") || !strings.Contains(got, "carol@example.com") || len(list("Recepients")) != 2 {
		t.Errorf("Recepients = %q", got)
	}
	if got := list("CopyRecepients"); len(got) != 1 || !strings.Contains(got[0], "dave@example.com") {
		t.Errorf("CopyRecepients = %q", got)
	}
	if got := list("BlindCopyRecepients"); len(got) != 1 || !strings.Contains(got[0], "eve@example.com") {
		t.Errorf("BlindCopyRecepients = %q", got)
	}
	if m["IsHtmlBody"] != true || !strings.Contains(str("Body"), "Здравствуйте!") || !strings.Contains(str("Body"), `src="cid:logo123@example.com"`) {
		t.Errorf("Body = %q IsHtmlBody=%v", str("Body"), m["IsHtmlBody"])
	}
	if m["Importance"] != float64(2) {
		t.Errorf("Importance = %v, want 2 (High)", m["Importance"])
	}
	if got := str("MessageId"); got != "<rich-1@example.com>" {
		t.Errorf("MessageId = %q", got)
	}
	if got := str("InReplyTo"); got != "<parent@example.com>" {
		t.Errorf("InReplyTo = %q", got)
	}
	if got := str("References"); got != "<root@example.com> <parent@example.com>" {
		t.Errorf("References = %q", got)
	}
	// 2026-11-28T09:34:56Z in .NET ticks.
	want := time.Date(2026, 11, 28, 9, 34, 56, 0, time.UTC).UnixNano()/100 + 621355968000000000
	if got := int64(m["SendDateTimeStamp"].(float64)); got != want {
		t.Errorf("SendDateTimeStamp = %d, want %d", got, want)
	}
	headers := strings.Join(list("Headers"), "\n")
	for _, h := range []string{"X-Custom-Header=custom value", "Message-ID=<rich-1@example.com>", "X-Priority=1 (Highest)"} {
		if !strings.Contains(headers, h) {
			t.Errorf("Headers lack %q:\n%s", h, headers)
		}
	}
	atts, _ := m["Attachments"].([]any)
	if len(atts) != 2 {
		t.Fatalf("Attachments = %v", atts)
	}
	byName := map[string]map[string]any{}
	for _, a := range atts {
		am := a.(map[string]any)
		byName[am["Name"].(string)] = am
	}
	logo, report := byName["logo.png"], byName["report.pdf"]
	if logo == nil || report == nil {
		t.Fatalf("attachment names: %v", byName)
	}
	if logo["IsInline"] != true || logo["Id"] != "logo123@example.com" || logo["Base64Data"] != base64.StdEncoding.EncodeToString(png) {
		t.Errorf("inline image = %v", logo)
	}
	if report["IsInline"] != false || report["Base64Data"] != base64.StdEncoding.EncodeToString(pdf) {
		t.Errorf("pdf attachment = %v", report)
	}
}
