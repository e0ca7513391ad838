// SPDX-License-Identifier: Apache-2.0

package exo

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
)

func token(t *testing.T, aud, scp string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"aud": aud, "scp": scp, "exp": 4102444800})
	return "h." + base64.RawURLEncoding.EncodeToString(b) + ".s"
}

func TestRoute(t *testing.T) {
	imapTok := token(t, "https://outlook.office.com", "IMAP.AccessAsUser.All SMTP.Send")
	graphTok := token(t, "https://graph.microsoft.com", "Mail.ReadWrite Mail.Send")
	ewsTok := token(t, "https://outlook.office365.com", "EWS.AccessAsUser.All")
	mb := func(host, tok string) *mail.Mailbox {
		return &mail.Mailbox{Kind: mail.ServerExchange, Host: host, UseOAuth: tok != "", AccessToken: tok, SenderAddress: "a@contoso.com"}
	}
	for _, c := range []struct {
		name     string
		mode     string
		graphApp bool
		mb       *mail.Mailbox
		want     Transport // "" = an error
	}{
		{"on-premises stays on EWS", "auto", true, mb("mail.contoso.com", ""), EWS},
		{"on-premises URL", "auto", false, mb("https://mail.contoso.com/EWS/Exchange.asmx", ""), EWS},
		{"online with app credentials", "auto", true, mb("outlook.office365.com", ewsTok), Graph},
		{"online URL form", "auto", true, mb("https://outlook.office365.com/EWS/Exchange.asmx", ""), Graph},
		{"subdomain pattern", "auto", true, mb("eur02.outlook.com", ""), Graph},
		{"online with a Graph token", "auto", false, mb("outlook.office365.com", graphTok), Graph},
		{"online with an IMAP token", "auto", false, mb("outlook.office.com", imapTok), IMAP},
		{"online, EWS token only", "auto", false, mb("outlook.office365.com", ewsTok), ""},
		{"online, password", "auto", false, mb("outlook.office365.com", ""), ""},
		{"forced EWS", "ews", false, mb("outlook.office365.com", ewsTok), EWS},
		{"forced Graph without credentials", "graph", false, mb("outlook.office365.com", imapTok), ""},
		{"forced IMAP", "imap", true, mb("outlook.office365.com", ewsTok), IMAP},
		{"forced IMAP, password", "imap", true, mb("outlook.office365.com", ""), ""},
		{"IMAP mailboxes are not routed", "graph", false, &mail.Mailbox{Kind: mail.ServerIMAP, Host: "outlook.office365.com"}, EWS},
	} {
		p, err := ParsePolicy(c.mode, DefaultHosts, c.graphApp, DefaultIMAPAddr, DefaultSMTPAddr)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Route(c.mb)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("%s: Route = %q, %v; want %q", c.name, got, err, c.want)
		}
		if err != nil && (mail.ClassOf(err) != mail.ClassConfig || !strings.Contains(err.Error(), "a@contoso.com")) {
			t.Errorf("%s: error %v is not a ClassConfig naming the mailbox", c.name, err)
		}
	}
	p, _ := ParsePolicy("", DefaultHosts, false, DefaultIMAPAddr, DefaultSMTPAddr)
	if _, err := p.Route(mb("outlook.office365.com", "")); err == nil || !strings.Contains(err.Error(), "EL_GRAPH_CLIENT_ID") ||
		!strings.Contains(err.Error(), "IMAP.AccessAsUser.All") {
		t.Errorf("the error must say what to configure: %v", err)
	}
	for _, bad := range []string{"maybe", "EWS2"} {
		if _, err := ParsePolicy(bad, DefaultHosts, false, DefaultIMAPAddr, DefaultSMTPAddr); err == nil {
			t.Errorf("mode %q accepted", bad)
		}
	}
	if _, err := ParsePolicy("auto", DefaultHosts, false, "outlook.office365.com", DefaultSMTPAddr); err == nil {
		t.Error("an IMAP address without a port accepted")
	}
}

func TestOAuthMailboxes(t *testing.T) {
	p, _ := ParsePolicy("auto", DefaultHosts, false, "127.0.0.1:9993", "127.0.0.1:9587")
	ews := "AAMkADAwATM0MDAAMS1iNTcwLWI2NTEtMDACLTAwCgAuAAADiJ5Uq9Mq3k2Z3YoFf3zKXgEA"
	mb := &mail.Mailbox{Kind: mail.ServerExchange, Host: "outlook.office365.com", UseOAuth: true, AccessToken: "t",
		SenderAddress: "a@contoso.com", FolderIDs: []string{ews, "Archive"}}
	im := p.IMAPMailbox(mb)
	if im.Kind != mail.ServerIMAP || im.Host != "127.0.0.1" || im.Port != 9993 || im.Secure != mail.SecureSSL || !im.UseSSL ||
		im.UserName != "a@contoso.com" || !slices.Equal(im.FolderIDs, []string{"Archive"}) || !im.UseOAuth {
		t.Errorf("IMAPMailbox = %+v", im)
	}
	sm := p.SMTPMailbox(mb)
	if sm.Host != "127.0.0.1" || sm.Port != 9587 || sm.Secure != mail.SecureStartTLS || sm.UseSSL {
		t.Errorf("SMTPMailbox = %+v", sm)
	}
	if mb.Kind != mail.ServerExchange || len(mb.FolderIDs) != 2 {
		t.Error("the registered mailbox was modified")
	}
}
