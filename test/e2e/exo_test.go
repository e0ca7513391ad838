// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emaillistener/emaillistener/internal/config"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// m365Token is a delegated Microsoft 365 access token as Creatio's OAuth
// application gets it: a JWT for Exchange Online with the given scopes.
func m365Token(user, scopes string) string {
	claims, _ := json.Marshal(map[string]any{"aud": "https://outlook.office.com", "scp": scopes, "upn": user,
		"exp": time.Now().Add(time.Hour).Unix(), "tid": "5f1c0000-0000-4000-8000-00000000c0de"})
	return "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(claims) + ".c2lnbmF0dXJl"
}

// exchangeOnlineCreds is Creatio's credentials object for a Microsoft 365
// mailbox: the Exchange server type, ServiceUrl outlook.office365.com, OAuth
// (or a password), and folder ids from the EWS days.
func (e *env) exchangeOnlineCreds(id, user, token string) string {
	q := func(v string) string { b, _ := json.Marshal(v); return string(b) }
	password := ""
	if token == "" {
		password = "alicepw"
	}
	return fmt.Sprintf(`{FolderIds:["AAMkADAwATM0MDAAMS1iNTcwLWI2NTEtMDACLTAwCgAuAAADiJ5Uq9Mq3k2Z3YoFf3zKXgEA"],UseFullEmail:true,`+
		`BpmUser:"Supervisor",BpmEndpoint:%s,BpmUserWorkspace:"Default",SenderEmailAddress:%s,ServiceUrl:"outlook.office365.com",`+
		`Port:0,UseOAuth:%v,IsAutodiscover:false,ServerTypeId:"%s",UseSsl:true,SecureOption:2,Id:%s,UserName:%s,Password:%s,AccessToken:%s}`,
		q(e.col.Endpoint()), q(user), token != "", exchangeServerType, q(id), q(user), q(password), q(token))
}

// A Microsoft 365 mailbox Creatio registers as Exchange, whose token carries
// the IMAP and SMTP scopes, is served over IMAP with XOAUTH2 (Dovecot stands
// in for outlook.office365.com and checks the token through its OAuth passdb)
// and sends through SMTP submission with XOAUTH2 (Postfix, SASL by Dovecot).
// Its state names the transport; the EWS folder ids it was registered with
// fall back to the inbox.
func TestExchangeOnlineOverIMAP(t *testing.T) {
	ts := newTokenServer(t)
	e := newEnvWith(t, envOptions{trustCA: true, postfix: true, dovecotExtra: dovecotOAuth(t, ts),
		peers: func(c *config.Config, dc *testenv.Dovecot, pf *testenv.Postfix) {
			c.ExchangeOnlineIMAP, c.ExchangeOnlineSMTP = dc.IMAPSAddr, pf.SMTPAddr
		}})
	const id = "e0000000-0000-4000-8000-000000000365"
	token := m365Token("alice@example.com", "IMAP.AccessAsUser.All SMTP.Send offline_access")
	ts.set(token, "alice@example.com", true)
	creds := e.exchangeOnlineCreds(id, "alice@example.com", token)
	e.mustPost("/api/listeners/create", "["+creds+"]")
	e.mustPost("/api/listeners/create", e.createBody(mailboxSpec{ID: "e0000000-0000-4000-8000-0000000b0b00", User: "bob@example.com", Password: "bobpw"}))
	st := e.waitState(id, "exists", 10*time.Second)
	if st["Transport"] != "imap" || fmt.Sprint(st["Folders"]) != "[INBOX]" {
		t.Errorf("state = %v, want transport imap watching INBOX", st)
	}
	e.appendMail("alice@example.com", "alicepw", "INBOX", simpleMail("m365-over-imap", "m365-1@example.com"))
	e.waitEmails("m365-over-imap", 1, 10*time.Second)

	// Sending goes through SMTP submission with the same token.
	send := fmt.Sprintf(`{"Email":{"Subject":"m365 sent over smtp","Body":"hello","IsHtmlBody":false,`+
		`"Sender":"alice@example.com","Recepients":["bob@example.com"],"Importance":1},"Attachments":null,"Credentials":%s}`,
		mustStd(t, creds))
	resp, err := http.Post(e.base+"/apiv2/email/send", "application/json", strings.NewReader(send))
	if err != nil {
		t.Fatal(err)
	}
	var answer strings.Builder
	_, _ = fmt.Fprint(&answer, resp.Status)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("send: %s", answer.String())
	}
	e.waitEmails("m365 sent over smtp", 1, 15*time.Second) // bob's IMAP subscription sees it arrive
}

// Without Graph credentials and with a token that only allows EWS, a
// Microsoft 365 mailbox cannot be served: Creatio is told exactly what to
// configure, as a configuration error.
func TestExchangeOnlineUnreachable(t *testing.T) {
	e := newEnv(t, nil)
	const id = "e0000000-0000-4000-8000-000000000366"
	token := m365Token("alice@example.com", "EWS.AccessAsUser.All")
	e.mustPost("/api/listeners/create", "["+e.exchangeOnlineCreds(id, "alice@example.com", token)+"]")
	st := e.waitState(id, "error", 10*time.Second)
	if st["ErrorClass"] != "config" {
		t.Errorf("state = %v, want a config error", st)
	}
	e.waitRequestsFor("ProcessMailboxState", id, func(m map[string]any) bool {
		msg := fmt.Sprint(m["ExceptionMessage"])
		return m["Avaliable"] == false && strings.Contains(msg, "EL_GRAPH_CLIENT_ID") && strings.Contains(msg, "IMAP.AccessAsUser.All")
	})
	var v validation
	if err := json.Unmarshal([]byte(e.mustPost("/api/mailbox/validate", e.exchangeOnlineCreds(id, "alice@example.com", token))), &v); err != nil {
		t.Fatal(err)
	}
	if v.IsValid || !strings.Contains(v.Message, "EWS") {
		t.Errorf("validate = %+v", v)
	}
}

// mustStd turns Creatio's unquoted-key JSON into standard JSON (send bodies
// are standard JSON).
func mustStd(t *testing.T, lenient string) string {
	t.Helper()
	var v any
	if err := lenientToStd(lenient, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
