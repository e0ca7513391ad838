// SPDX-License-Identifier: Apache-2.0

// Package exo decides how a mailbox Creatio registers with the Exchange server
// type is reached when it lives in Exchange Online, where Microsoft blocks EWS
// from 2026-10-01 and switches it off on 2027-04-01: through Microsoft Graph,
// through IMAP and SMTP with the OAuth token Creatio sends (XOAUTH2), or, while
// a tenant is still on Microsoft's EWS allow list, through EWS. On-premises
// Exchange keeps EWS. The decision needs no network: it looks at the
// ServiceUrl's host, the service's settings and the token's claims.
package exo

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/emaillistener/emaillistener/internal/jwtclaims"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Transport is how a mailbox is reached.
type Transport string

const (
	EWS   Transport = "ews"
	Graph Transport = "graph"
	IMAP  Transport = "imap"
)

// Mode is the operator's choice for Exchange Online (EL_EXCHANGE_ONLINE).
type Mode string

const (
	ModeAuto  Mode = "auto"  // Graph with app credentials or a Graph token, else IMAP with an IMAP token, else a clear error
	ModeGraph Mode = "graph" // Graph only
	ModeIMAP  Mode = "imap"  // IMAP and SMTP with XOAUTH2 only
	ModeEWS   Mode = "ews"   // EWS, for tenants on the EWS allow list until 2027-04-01
)

// DefaultHosts are the ServiceUrl hosts of Exchange Online.
const DefaultHosts = "outlook.office365.com,outlook.office.com,*.outlook.com"

// Microsoft 365's IMAP and SMTP submission endpoints.
const (
	DefaultIMAPAddr = "outlook.office365.com:993"
	DefaultSMTPAddr = "smtp.office365.com:587"
)

// Audiences of Microsoft Graph tokens: its URL and its application id.
var graphAudiences = []string{"https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000"}

// Policy is the routing rule of a deployment.
type Policy struct {
	Mode     Mode
	Hosts    []string // exact host names, or "*.suffix"
	GraphApp bool     // the service has Graph application credentials
	IMAPAddr string   // host:port of Exchange Online's IMAP (implicit TLS)
	SMTPAddr string   // host:port of its SMTP submission (STARTTLS)
}

// ParsePolicy reads the operator's settings.
func ParsePolicy(mode, hosts string, graphApp bool, imapAddr, smtpAddr string) (Policy, error) {
	p := Policy{Mode: Mode(strings.ToLower(strings.TrimSpace(mode))), GraphApp: graphApp, IMAPAddr: imapAddr, SMTPAddr: smtpAddr}
	switch p.Mode {
	case "":
		p.Mode = ModeAuto
	case ModeAuto, ModeGraph, ModeIMAP, ModeEWS:
	default:
		return p, fmt.Errorf("EL_EXCHANGE_ONLINE %q: want auto, graph, imap or ews", mode)
	}
	for _, h := range strings.Split(hosts, ",") {
		if h = strings.ToLower(strings.TrimSpace(h)); h != "" {
			p.Hosts = append(p.Hosts, h)
		}
	}
	for _, a := range []*string{&p.IMAPAddr, &p.SMTPAddr} {
		if _, _, err := net.SplitHostPort(*a); err != nil {
			return p, fmt.Errorf("Exchange Online endpoint %q: want host:port", *a)
		}
	}
	return p, nil
}

// Online reports whether mb's Exchange server is Exchange Online.
func (p Policy) Online(mb *mail.Mailbox) bool {
	host := hostOf(mb.Host)
	if host == "" {
		return false
	}
	for _, h := range p.Hosts {
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			if strings.HasSuffix(host, "."+suffix) {
				return true
			}
		} else if host == h {
			return true
		}
	}
	return false
}

// Route returns how mb is reached, or a ClassConfig error that tells the
// administrator what to configure.
func (p Policy) Route(mb *mail.Mailbox) (Transport, error) {
	if mb.Kind != mail.ServerExchange || !p.Online(mb) {
		return EWS, nil
	}
	claims, _ := jwtclaims.Parse(mb.AccessToken)
	graphOK := p.GraphApp || (mb.UseOAuth && claims.For(graphAudiences...))
	imapOK := mb.UseOAuth && (claims.HasScope("IMAP.AccessAsUser.All") || claims.HasScope("IMAP.AccessAsApp"))
	switch p.Mode {
	case ModeEWS:
		return EWS, nil
	case ModeGraph:
		if graphOK {
			return Graph, nil
		}
		return "", p.unreachable(mb, "EL_EXCHANGE_ONLINE=graph, but the service has no Graph app credentials "+
			"(EL_GRAPH_TENANT_ID, EL_GRAPH_CLIENT_ID, EL_GRAPH_CLIENT_SECRET) and the mailbox's token is not a Graph token")
	case ModeIMAP:
		if mb.UseOAuth && mb.AccessToken != "" {
			return IMAP, nil
		}
		return "", p.unreachable(mb, "EL_EXCHANGE_ONLINE=imap needs an OAuth mailbox (Exchange Online refuses passwords over IMAP)")
	}
	switch {
	case graphOK:
		return Graph, nil
	case imapOK:
		return IMAP, nil
	}
	return "", p.unreachable(mb, "Exchange Online no longer serves EWS (blocked from 2026-10-01, switched off on 2027-04-01). "+
		"Give the listener Microsoft Graph application credentials (EL_GRAPH_TENANT_ID, EL_GRAPH_CLIENT_ID, "+
		"EL_GRAPH_CLIENT_SECRET; application permissions Mail.ReadWrite and Mail.Send with admin consent), "+
		"or add the IMAP.AccessAsUser.All and SMTP.Send scopes to Creatio's OAuth application for Microsoft 365, "+
		"or set EL_EXCHANGE_ONLINE=ews while the tenant is on Microsoft's EWS allow list")
}

func (p Policy) unreachable(mb *mail.Mailbox, why string) error {
	return mail.Errorf(mail.ClassConfig, "exchange online", "mailbox %s on %s: %s", mail.Excerpt(mb.SenderAddress, 200),
		mail.Excerpt(hostOf(mb.Host), 200), why)
}

// IMAPMailbox is mb as an IMAP mailbox on Exchange Online's IMAP endpoint,
// logging in with its OAuth token (XOAUTH2). Folder ids Creatio stored for
// EWS mean nothing to IMAP: the inbox is watched instead.
func (p Policy) IMAPMailbox(mb *mail.Mailbox) *mail.Mailbox {
	return p.oauthMailbox(mb, p.IMAPAddr, mail.SecureSSL)
}

// SMTPMailbox is mb's send credentials on Exchange Online's SMTP submission
// endpoint (STARTTLS, XOAUTH2).
func (p Policy) SMTPMailbox(mb *mail.Mailbox) *mail.Mailbox {
	return p.oauthMailbox(mb, p.SMTPAddr, mail.SecureStartTLS)
}

func (p Policy) oauthMailbox(mb *mail.Mailbox, addr string, secure mail.SecureOption) *mail.Mailbox {
	out := *mb
	host, port, _ := net.SplitHostPort(addr)
	out.Kind, out.Host, out.Secure, out.UseSSL = mail.ServerIMAP, host, secure, secure == mail.SecureSSL
	fmt.Sscan(port, &out.Port)
	if out.UserName == "" {
		out.UserName = mb.SenderAddress
	}
	out.FolderIDs = nil
	for _, f := range mb.FolderIDs {
		if !ewsFolderID(f) {
			out.FolderIDs = append(out.FolderIDs, f)
		}
	}
	return &out
}

// ewsFolderID reports whether id looks like an EWS folder id (base64 of a
// store entry, 40+ characters) rather than an IMAP path.
func ewsFolderID(id string) bool {
	if len(id) < 40 {
		return false
	}
	for _, r := range id {
		if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '/' || r == '=' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// hostOf is the lower-case host of a ServiceUrl (host, host:port or URL).
func hostOf(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
}
