package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/history"
	"github.com/emaillistener/emaillistener/internal/httpapi"
	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/netguard"
	"github.com/emaillistener/emaillistener/internal/source"
	"github.com/emaillistener/emaillistener/internal/source/imapsrc"
)

// mailboxOps serves the synchronous per-mailbox calls (validate, folders,
// availability) and hands synchronize and send to their components.
type mailboxOps struct {
	imap            *imapsrc.Options
	validateTimeout time.Duration
	pingClient      *http.Client
	// restricted: EL_CALLBACK_NETWORKS is set; availability answers then
	// never say why a host was not reached (no network scanner for callers).
	restricted bool
	// probes caps the validate, folders and availability checks in flight:
	// each holds a connection to a server the caller chose.
	probes  chan struct{}
	history historyStarter
	sender  mailSender
}

// probeWait is how long a check waits for a free slot before it is refused.
const probeWait = 5 * time.Second

// errBusy refuses a check when every probe slot stays taken.
var errBusy = fmt.Errorf("%w: too many validate, folders and availability checks at once (EL_PROBE_CONCURRENCY); retry shortly", httpapi.ErrUnavailable)

// probe takes a slot for one outbound check.
func (o *mailboxOps) probe(ctx context.Context) (release func(), err error) {
	t := time.NewTimer(probeWait)
	defer t.Stop()
	select {
	case o.probes <- struct{}{}:
		return func() { <-o.probes }, nil
	case <-t.C:
		return nil, errBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// newPingClient is the availability check's HTTP client: no redirects (any
// answer proves the host reachable), and allow-listed networks only.
func newPingClient(allow *netguard.Allow) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: allow.Control()}
	tr := &http.Transport{DialContext: d.DialContext, TLSHandshakeTimeout: 10 * time.Second, DisableKeepAlives: true,
		ResponseHeaderTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type historyStarter interface {
	Start(ctx context.Context, mb *mail.Mailbox, f creatio.SyncFilter) error
}

// historyAdapter maps Creatio's filter to a history query.
type historyAdapter struct{ l *history.Loader }

func (h historyAdapter) Start(ctx context.Context, mb *mail.Mailbox, f creatio.SyncFilter) error {
	q := source.Query{Since: f.Since, SentSince: f.SentDate, UIDFrom: f.UIDFrom}
	if f.Undraft {
		q.NotFlags = append(q.NotFlags, `\Draft`)
	}
	if f.Undeleted {
		q.NotFlags = append(q.NotFlags, `\Deleted`)
	}
	if f.WithoutKeyword != "" {
		q.NotFlags = append(q.NotFlags, f.WithoutKeyword)
	}
	if err := h.l.Start(ctx, mb, history.Filter{Query: q}); err != nil {
		if errors.Is(err, history.ErrStopped) {
			return httpapi.ErrUnavailable
		}
		return err
	}
	return nil
}

type mailSender interface {
	Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
}

var _ httpapi.MailboxService = (*mailboxOps)(nil)

func errNotIMAP(mb *mail.Mailbox) error {
	return fmt.Errorf("%s mailboxes are %w", mb.Kind, httpapi.ErrUnsupported)
}

func (o *mailboxOps) Validate(ctx context.Context, mb *mail.Mailbox) creatio.CredentialsValidationInfo {
	if mb.Kind != mail.ServerIMAP {
		return creatio.ValidationFailed(errNotIMAP(mb).Error(), creatio.ActionLinkToAcademy)
	}
	release, err := o.probe(ctx)
	if err != nil {
		return creatio.ValidationFailed(err.Error(), creatio.ActionEmailTroubleShoot)
	}
	defer release()
	ctx, cancel := context.WithTimeoutCause(ctx, o.validateTimeout, fmt.Errorf("no answer within %v", o.validateTimeout))
	defer cancel()
	conn, err := imapsrc.Dial(ctx, mb, o.imap, nil)
	if err != nil {
		return creatio.ValidationFailed(describe(mb, err), creatio.ActionEmailTroubleShoot)
	}
	_ = conn.Close()
	name := mb.SenderAddress
	if name == "" {
		name = mb.UserName
	}
	return creatio.ValidationOK(name)
}

// describe turns a classified connection error into a sentence for the
// Creatio diagnostics page.
func describe(mb *mail.Mailbox, err error) string {
	ep, _ := imapsrc.ResolveEndpoint(mb)
	where := ep.Addr
	if where == "" {
		where = mb.Host
	}
	where = creatio.Excerpt(where, 300)
	switch mail.ClassOf(err) {
	case mail.ClassAuth:
		return fmt.Sprintf("Authentication failed for %q on %s: %v", mb.UserName, where, err)
	case mail.ClassCertificate:
		return fmt.Sprintf("The TLS certificate of %s is not trusted (self-signed, expired or issued for another host name): %v", where, err)
	case mail.ClassTLS:
		return fmt.Sprintf("Secure connection to %s failed (TLS handshake; does the port speak TLS?): %v", where, err)
	case mail.ClassConnect:
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return fmt.Sprintf("Unknown mail server host %q: %v", ep.Host, err)
		}
		return fmt.Sprintf("Cannot connect to %s: %v", where, err)
	case mail.ClassTimeout:
		return fmt.Sprintf("The mail server %s did not answer in time: %v", where, err)
	case mail.ClassConfig:
		return fmt.Sprintf("The mailbox settings cannot work: %v", err)
	default:
		return fmt.Sprintf("Unexpected answer from %s: %v", where, err)
	}
}

func (o *mailboxOps) Folders(ctx context.Context, mb *mail.Mailbox) ([]creatio.MailboxFolder, error) {
	if mb.Kind != mail.ServerIMAP {
		return nil, errNotIMAP(mb)
	}
	release, err := o.probe(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, o.validateTimeout)
	defer cancel()
	conn, err := imapsrc.Dial(ctx, mb, o.imap, nil)
	if err != nil {
		return nil, &opError{err: err, msg: describe(mb, err)}
	}
	defer conn.Close()
	list, err := conn.Folders(ctx)
	if err != nil {
		return nil, &opError{err: err, msg: describe(mb, err)}
	}
	return folderTree(list), nil
}

// folderTree maps LIST output to Creatio's flat tree: Id is the full path
// (what Creatio sends back in FolderIds), Name the leaf, ParentId the path
// above it. \Noselect folders are kept so that their children have a parent.
func folderTree(list []source.Folder) []creatio.MailboxFolder {
	out := make([]creatio.MailboxFolder, 0, len(list))
	for _, f := range list {
		mf := creatio.MailboxFolder{ID: f.Name, Name: f.Name}
		if f.Delim != 0 {
			if i := strings.LastIndex(f.Name, string(f.Delim)); i > 0 {
				mf.ParentID, mf.Name = f.Name[:i], f.Name[i+1:]
			}
		}
		out = append(out, mf)
	}
	return out
}

func (o *mailboxOps) Synchronize(ctx context.Context, mb *mail.Mailbox, f creatio.SyncFilter) error {
	if mb.Kind != mail.ServerIMAP {
		return errNotIMAP(mb)
	}
	if o.history == nil {
		return httpapi.ErrUnsupported
	}
	return o.history.Start(ctx, mb, f)
}

func (o *mailboxOps) Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error {
	if o.sender == nil {
		return httpapi.ErrUnsupported
	}
	return o.sender.Send(ctx, mb, msg)
}

// Ping reports whether endpoint answers HTTP at all: any status (a WCF
// endpoint answers a GET with 405) proves the network path and TLS work.
func (o *mailboxOps) Ping(ctx context.Context, endpoint string) error {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("the endpoint is not an http(s) URL")
	}
	release, err := o.probe(ctx)
	if err != nil {
		return err
	}
	defer release()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return errors.New("the endpoint is not a usable URL")
	}
	resp, err := o.pingClient.Do(req)
	if err != nil {
		if o.restricted {
			return errors.New("the service cannot reach this endpoint")
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the service cannot reach %s://%s: %v", u.Scheme, creatio.Excerpt(u.Host, 100), err)
	}
	resp.Body.Close()
	return nil
}

// opError keeps the classified error for logs and status mapping and gives
// the HTTP layer a sentence for the user.
type opError struct {
	err error
	msg string
}

func (e *opError) Error() string       { return e.msg }
func (e *opError) Unwrap() error       { return e.err }
func (e *opError) UserMessage() string { return e.msg }
