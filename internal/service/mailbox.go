// SPDX-License-Identifier: Apache-2.0

package service

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/source"
)

// probeWait is how long a check waits for a free slot before it is refused.
const probeWait = 5 * time.Second

// errBusy refuses a check when every probe slot stays taken.
var errBusy = fmt.Errorf("%w: too many validate, folders and availability checks at once (EL_PROBE_CONCURRENCY); retry shortly", httpapi.ErrUnavailable)

// probe takes a slot for one outbound check: each holds a connection to a
// server the caller chose.
func (s *Service) probe(ctx context.Context) (release func(), err error) {
	t := time.NewTimer(probeWait)
	defer t.Stop()
	select {
	case s.probes <- struct{}{}:
		return func() { <-s.probes }, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// protocol returns mb's protocol, or an error for the user.
func (s *Service) protocol(mb *mail.Mailbox) (Protocol, error) {
	p, ok := s.opts.Protocols[mb.Kind]
	if !ok {
		return Protocol{}, fmt.Errorf("%s mailboxes are %w", mb.Kind, httpapi.ErrUnsupported)
	}
	return p, nil
}

func (p Protocol) describe(mb *mail.Mailbox, err error) string {
	if p.Describe != nil {
		return p.Describe(mb, err)
	}
	return err.Error()
}

// Validate logs in and reports the outcome; it never fails as a call
// (docs/CREATIO-PROTOCOL.md §8.1).
func (s *Service) Validate(ctx context.Context, mb *mail.Mailbox) creatio.CredentialsValidationInfo {
	p, err := s.protocol(mb)
	if err != nil || p.Open == nil {
		return creatio.ValidationFailed(fmt.Sprintf("%s mailboxes are not supported by this version of the service", mb.Kind), creatio.ActionLinkToAcademy)
	}
	release, err := s.probe(ctx)
	if err != nil {
		return creatio.ValidationFailed(err.Error(), creatio.ActionEmailTroubleShoot)
	}
	defer release()
	ctx, cancel := context.WithTimeoutCause(ctx, s.opts.ProbeTimeout, fmt.Errorf("no answer within %v", s.opts.ProbeTimeout))
	defer cancel()
	probe, err := p.Open(ctx, mb)
	if err != nil {
		return creatio.ValidationFailed(p.describe(mb, err), creatio.ActionEmailTroubleShoot)
	}
	_ = probe.Close()
	name := mb.SenderAddress
	if name == "" {
		name = mb.UserName
	}
	return creatio.ValidationOK(name)
}

// Folders lists the mailbox's folders as Creatio's tree.
func (s *Service) Folders(ctx context.Context, mb *mail.Mailbox) ([]creatio.MailboxFolder, error) {
	var list []mail.Folder
	err := s.session(ctx, mb, "folders", func(ctx context.Context, p Protocol, probe Probe) (err error) {
		if list, err = probe.Folders(ctx); err != nil {
			return &mail.UserError{Err: err, Msg: p.describe(mb, err)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return creatio.FolderTree(list), nil
}

// session runs fn on a session of mb's own, opened under a probe slot and
// ProbeTimeout; what names the operation in "not supported" errors.
func (s *Service) session(ctx context.Context, mb *mail.Mailbox, what string, fn func(ctx context.Context, p Protocol, probe Probe) error) error {
	p, err := s.protocol(mb)
	if err != nil {
		return err
	}
	if p.Open == nil {
		return fmt.Errorf("%s %s are %w", mb.Kind, what, httpapi.ErrUnsupported)
	}
	release, err := s.probe(ctx)
	if err != nil {
		return err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, s.opts.ProbeTimeout)
	defer cancel()
	probe, err := p.Open(ctx, mb)
	if err != nil {
		return &mail.UserError{Err: err, Msg: p.describe(mb, err)}
	}
	defer probe.Close()
	return fn(ctx, p, probe)
}

// Synchronize starts a history load.
func (s *Service) Synchronize(ctx context.Context, mb *mail.Mailbox, q mail.Query) error {
	if _, err := s.protocol(mb); err != nil {
		return err
	}
	return unavailable(s.opts.Loads.Load(ctx, mb, q))
}

// Send sends msg through the mailbox's protocol.
func (s *Service) Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	p, err := s.protocol(mb)
	if err != nil {
		return err
	}
	if p.Send == nil {
		return fmt.Errorf("sending from %s mailboxes is %w", mb.Kind, httpapi.ErrUnsupported)
	}
	return p.Send(ctx, mb, msg)
}

// History returns the progress of mb's last history load on this node.
func (s *Service) History(id mail.MailboxID) (mail.HistoryProgress, bool) {
	return s.opts.Loads.Progress(id)
}

// SendRaw sends a complete message through the mailbox's protocol.
func (s *Service) SendRaw(ctx context.Context, mb *mail.Mailbox, raw []byte) error {
	p, err := s.protocol(mb)
	if err != nil {
		return err
	}
	if p.SendRaw == nil {
		return fmt.Errorf("sending raw messages from %s mailboxes is %w", mb.Kind, httpapi.ErrUnsupported)
	}
	return p.SendRaw(ctx, mb, raw)
}

// fetcher is a session that downloads one message by its reference.
type fetcher interface {
	Fetch(ctx context.Context, ref source.Ref) (*source.Fetched, error)
}

// Message downloads one message of mb (raw, as the server has it; its
// header only when it is over the size limit) on a session of its own;
// source.ErrGone when the server does not have it (any more).
func (s *Service) Message(ctx context.Context, mb *mail.Mailbox, folder, id string) (*source.Fetched, error) {
	var msg *source.Fetched
	err := s.session(ctx, mb, "message fetches", func(ctx context.Context, _ Protocol, probe Probe) (err error) {
		f, ok := probe.(fetcher)
		if !ok {
			return fmt.Errorf("%s message fetches are %w", mb.Kind, httpapi.ErrUnsupported)
		}
		msg, err = f.Fetch(ctx, source.Ref{Folder: folder, ID: id})
		return err
	})
	return msg, err
}

// PingClient is the availability check's HTTP client: no redirects (any
// answer proves the host reachable), and only addresses control accepts (an
// allow-list of callback networks; nil: any).
func PingClient(control func(network, address string, c syscall.RawConn) error) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: control}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second, DisableKeepAlives: true,
		ResponseHeaderTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Ping reports whether endpoint answers HTTP at all: any status (a WCF
// endpoint answers a GET with 405) proves the network path and TLS work.
func (s *Service) Ping(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("the endpoint is not an http(s) URL")
	}
	release, err := s.probe(ctx)
	if err != nil {
		return err
	}
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return errors.New("the endpoint is not a usable URL")
	}
	resp, err := s.opts.PingClient.Do(req)
	if err != nil {
		if s.opts.Restricted {
			return errors.New("the service cannot reach this endpoint")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the service cannot reach %s://%s: %v", u.Scheme, mail.Excerpt(u.Host, 100), err)
	}
	resp.Body.Close()
	return nil
}

// AccessToken redeems an OAuth client's refresh token: a native account's
// first access token.
func (s *Service) AccessToken(ctx context.Context, o *mail.OAuth2) (access, refresh string, err error) {
	if s.opts.OAuth == nil {
		return "", "", fmt.Errorf("OAuth accounts are %w", httpapi.ErrUnsupported)
	}
	return s.opts.OAuth.Token(ctx, o)
}

// RenewToken gets a native OAuth account a fresh access token and registers
// it as an update, which the running subscription takes without a restart:
// what Creatio's update call does for its mailboxes. The account is read
// again first, so that a refresh token rotated or replaced since mb was
// handed out is the one redeemed.
func (s *Service) RenewToken(ctx context.Context, mb *mail.Mailbox) error {
	_, err, _ := s.renewals.Do(string(mb.ID), func() (any, error) { return nil, s.renewToken(ctx, mb.ID) })
	return err
}

func (s *Service) renewToken(ctx context.Context, id mail.MailboxID) error {
	cur, err := s.Mailbox(ctx, id)
	if err != nil {
		return err
	}
	if cur == nil || cur.OAuth2 == nil {
		return mail.Errorf(mail.ClassConfig, "renew token", "the account is gone or has no OAuth client")
	}
	access, refresh, err := s.AccessToken(ctx, cur.OAuth2)
	if err != nil {
		return err
	}
	upd, o := *cur, *cur.OAuth2
	o.RefreshToken = refresh
	upd.OAuth2, upd.AccessToken = &o, access
	return s.Subscribe(ctx, []*mail.Mailbox{&upd}, mail.ModeUpdate)
}
