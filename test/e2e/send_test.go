// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestSend: Creatio's SendCommand goes out through a real Postfix (SMTP AUTH
// against Dovecot, STARTTLS), reaches every recipient with the right
// Message-ID, inline image and attachment, is filed in the sender's Sent
// folder, and comes back through the live subscriptions.
func TestSend(t *testing.T) {
	e := newEnvWith(t, envOptions{trustCA: true, postfix: true})
	if err := e.dc.CreateFolder("alice@example.com", "alicepw", "Sent"); err != nil {
		t.Fatal(err)
	}
	const aliceID, bobID = "5e0d0000-0000-4000-8000-0000000a11ce", "5e0d0000-0000-4000-8000-000000000b0b"
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: aliceID, User: "alice@example.com", Password: "alicepw"}))
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: bobID, User: "bob@example.com", Password: "bobpw"}))
	e.waitState(aliceID, "exists", 10*time.Second)
	e.waitState(bobID, "exists", 10*time.Second)

	png := []byte("\x89PNG\r\n\x1a\nfake-png-bytes")
	pdf := []byte("%PDF-1.4 fake\x00\xff")
	host, port, _ := strings.Cut(e.pf.SMTPAddr, ":")
	smtpCreds := func(password string) map[string]any {
		return map[string]any{"Id": aliceID, "UserName": "alice@example.com", "Password": password, "ServiceUrl": host,
			"Port": port, "UseSsl": false, "SecureOption": 3, "ServerTypeId": imapServerType, "UseOAuth": false,
			"SenderEmailAddress": "alice@example.com"}
	}
	email := map[string]any{
		"Id": "<2f6c4d1e-0000-4000-8000-00000000c0de@example.com>", "Subject": "Отчёт за ноябрь",
		"Body":   `<p>Привет!</p><img src="cid:logo-1">`,
		"Sender": "Alice <alice@example.com>", "IsHtmlBody": true, "Importance": 2,
		"Recepients": []string{"bob@example.com"}, "CopyRecepients": []string{"carol@example.com"},
		"BlindCopyRecepients": []string{"dave@example.com"},
		"Headers":             []string{"MessageId=<2f6c4d1e-0000-4000-8000-00000000c0de@example.com>", "X-Crm=creatio"},
		"Attachments": []map[string]any{
			{"Id": "logo-1", "Name": "logo.png", "Base64Data": base64.StdEncoding.EncodeToString(png), "IsInline": true},
			{"Id": "9f1e", "Name": "отчёт.pdf", "Base64Data": base64.StdEncoding.EncodeToString(pdf), "IsInline": false},
		},
	}
	body, _ := json.Marshal(map[string]any{"Email": email, "Attachments": nil, "Credentials": smtpCreds("alicepw")})
	code, out := e.post("/apiv2/email/send", string(body))
	if code != 200 || out != "" {
		t.Fatalf("send: %d %q, want 200 with an empty body", code, out)
	}
	// Bob's live subscription delivers it; alice's delivers the Sent copy.
	got := e.waitEmails("Отчёт за ноябрь", 2, 15*time.Second)
	byMailbox := map[string]map[string]any{}
	for _, m := range got {
		byMailbox[m.Subscription["MailboxId"].(string)] = m.Data
	}
	for _, id := range []string{aliceID, bobID} {
		m := byMailbox[id]
		if m == nil {
			t.Fatalf("no delivery for mailbox %s (got %d emails)", id, len(got))
		}
		if m["MessageId"] != "<2f6c4d1e-0000-4000-8000-00000000c0de@example.com>" || m["Importance"] != float64(2) {
			t.Errorf("%s: MessageId %v Importance %v", id, m["MessageId"], m["Importance"])
		}
		if rc := anyStrings(m["CopyRecepients"]); len(rc) != 1 || !strings.Contains(rc[0], "carol@example.com") {
			t.Errorf("%s: CopyRecepients %v", id, rc)
		}
		if !strings.Contains(m["Body"].(string), "Привет!") || !strings.Contains(m["Body"].(string), "cid:logo-1") {
			t.Errorf("%s: Body %q", id, m["Body"])
		}
		atts := m["Attachments"].([]any)
		var inline, file map[string]any
		for _, a := range atts {
			am := a.(map[string]any)
			if am["IsInline"] == true {
				inline = am
			} else {
				file = am
			}
		}
		if inline == nil || inline["Id"] != "logo-1" || inline["Base64Data"] != base64.StdEncoding.EncodeToString(png) {
			t.Errorf("%s: inline image %v", id, inline)
		}
		if file == nil || file["Name"] != "отчёт.pdf" || file["Base64Data"] != base64.StdEncoding.EncodeToString(pdf) {
			t.Errorf("%s: attachment %v", id, file)
		}
		headers := strings.Join(anyStrings(m["Headers"]), "\n")
		if !strings.Contains(headers, "X-Crm=creatio") || strings.Contains(strings.ToLower(headers), "bcc") {
			t.Errorf("%s: headers %s", id, headers)
		}
	}
	// The Bcc recipient got it too, without a Bcc header anywhere.
	if _, err := e.dc.Append("dave@example.com", "davepw", "INBOX", simpleMail("probe", "probe@example.com")); err != nil {
		t.Fatal(err)
	}
	c, err := e.dc.Client("dave@example.com", "davepw")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	_ = c.Logout().Wait()
	c.Close()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 2 {
		t.Errorf("dave's INBOX: %v %v, want the sent mail plus the probe", st, err)
	}

	// A wrong password: 200 with a sentence for the user.
	body, _ = json.Marshal(map[string]any{"Email": email, "Attachments": nil, "Credentials": smtpCreds(wrongPassword)})
	code, out = e.post("/apiv2/email/send", string(body))
	if code != 200 || out == "" || !strings.Contains(out, "login") {
		t.Errorf("wrong password: %d %q", code, out)
	}
	// A refused recipient: nothing is sent, the user is told which address.
	email["Recepients"] = []string{"nobody@example.com"}
	body, _ = json.Marshal(map[string]any{"Email": email, "Attachments": nil, "Credentials": smtpCreds("alicepw")})
	code, out = e.post("/api/email/send", string(body))
	if code != 200 || !strings.Contains(out, "nobody@example.com") {
		t.Errorf("refused recipient: %d %q", code, out)
	}
}
