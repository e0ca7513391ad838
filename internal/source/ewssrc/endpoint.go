// SPDX-License-Identifier: Apache-2.0

package ewssrc

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/ews"
	"github.com/emaillistener/emaillistener/internal/ews/autodiscover"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// ewsPath is where every Exchange server answers EWS.
const ewsPath = "/EWS/Exchange.asmx"

// endpoint returns mb's EWS URL and the grouping information Autodiscover
// gave for it (empty without Autodiscover). With IsAutodiscover the URL is
// discovered, and ServiceUrl, when the client sent one too, is the fallback.
func (a *Adapter) endpoint(ctx context.Context, mb *mail.Mailbox) (ewsURL, group string, err error) {
	if mb.Extra[creatio.ExtraIsAutodiscover] != "true" {
		u, err := EWSURL(mb)
		return u, "", err
	}
	addr := address(mb)
	a.mu.Lock()
	d, ok := a.discovered[addr]
	a.mu.Unlock()
	if ok && time.Now().Before(d.expires) {
		return d.url, d.group, nil
	}
	res, err := a.discover(ctx, mb, addr)
	if err != nil {
		if mb.Host != "" {
			if u, uerr := EWSURL(mb); uerr == nil {
				a.log.Warn("autodiscover failed, using ServiceUrl", "mailbox", string(mb.ID), "err", err)
				return u, "", nil
			}
		}
		return "", "", err
	}
	a.mu.Lock()
	a.discovered[addr] = discovery{url: res.EWSURL, group: res.GroupingInformation, expires: time.Now().Add(discoveryTTL)}
	a.mu.Unlock()
	return res.EWSURL, res.GroupingInformation, nil
}

// forget drops mb's cached Autodiscover answer, after a call suggests the
// mailbox moved.
func (a *Adapter) forget(mb *mail.Mailbox) {
	a.mu.Lock()
	delete(a.discovered, address(mb))
	a.mu.Unlock()
}

func (a *Adapter) discover(ctx context.Context, mb *mail.Mailbox, addr string) (*autodiscover.Result, error) {
	allow, err := autodiscover.CompileAllowRedirect(mb.Extra[creatio.ExtraAutodiscoverRedirectURL])
	if err != nil {
		return nil, err
	}
	rt, err := ews.NewAuthTransport(a.opts.Transport.Clone(), a.credentials(mb))
	if err != nil {
		return nil, err
	}
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	probe := a.opts.Transport.Clone()
	return autodiscover.Discover(ctx, addr, autodiscover.Options{
		HTTP:          &http.Client{Transport: rt, CheckRedirect: noRedirect},
		ProbeHTTP:     &http.Client{Transport: probe, CheckRedirect: noRedirect},
		Endpoints:     a.opts.AutodiscoverURLs,
		AllowRedirect: allow,
	})
}

// EWSURL is the EWS endpoint ServiceUrl names: a URL is kept as is (with the
// EWS path when it has none), a host name or host:port becomes
// https://host/EWS/Exchange.asmx (http when the client turned SSL off).
func EWSURL(mb *mail.Mailbox) (string, error) {
	s := strings.TrimSpace(mb.Host)
	if s == "" {
		return "", mail.Errorf(mail.ClassConfig, "ews url", "the mailbox has no Exchange server address (ServiceUrl) and Autodiscover is off")
	}
	if !strings.Contains(s, "://") {
		scheme := "https"
		if !mb.UseSSL && mb.Secure == mail.SecureNone {
			scheme = "http"
		}
		host := strings.TrimRight(s, "/")
		if _, _, err := net.SplitHostPort(host); err != nil && mb.Port > 0 {
			host = net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(mb.Port))
		}
		s = scheme + "://" + host
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "" || u.User != nil {
		return "", mail.Errorf(mail.ClassConfig, "ews url", "ServiceUrl %q is not an Exchange server address or EWS URL", mail.Excerpt(mb.Host, 200))
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = ewsPath
	}
	return u.String(), nil
}
