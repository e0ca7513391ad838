// SPDX-License-Identifier: Apache-2.0

package creatio

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// Creatio's MailServer.TypeId values (ServerTypeId, docs/CREATIO-PROTOCOL.md §4.2).
const (
	ServerTypeIMAP     = "844f0837-eaa0-4f40-b965-71f5db9eae6e"
	ServerTypeExchange = "3490bd45-4f4d-4613-aa06-454546f3342a"
)

// Keys of mail.Mailbox.Extra: credential fields this package passes through
// without interpreting them. Boolean flags are present (as "true") only when set.
const (
	ExtraServiceURL              = "ServiceUrl"              // ServiceUrl as sent, before host/port extraction
	ExtraIsAutodiscover          = "IsAutodiscover"          // Exchange autodiscover enabled
	ExtraAutodiscoverRedirectURL = "AutodiscoverRedirectUrl" // regex of allowed autodiscover redirects
	ExtraFolderClassName         = "FolderClassName"         // folders request: IPF.Note, IPF.Appointment, …
	ExtraPersonalMetrics         = "PersonalMetrics"
	ExtraUseFullEmail            = "UseFullEmail"
)

// SynchronizationCredentials is the mailbox descriptor Creatio sends to create,
// recreate, update, validate, folders, synchronize and send
// (docs/CREATIO-PROTOCOL.md §4.2). Every field is optional because older
// Creatio builds omit many of them (docs/CREATIO-PROTOCOL.md §4.4).
// Password and AccessToken are secrets: String and LogValue redact them.
type SynchronizationCredentials struct {
	ID                      string              `json:"Id"`                      // mailbox id (GUID); subscription key
	UserName                string              `json:"UserName"`                // login
	Password                string              `json:"Password"`                // plain text; empty for OAuth
	AccessToken             string              `json:"AccessToken"`             // OAuth 2 bearer, refreshed by Creatio
	BpmUser                 string              `json:"BpmUser"`                 // mailbox owner; echoed as SysAdminUnit/BpmUserName
	BpmEndpoint             string              `json:"BpmEndpoint"`             // callback URL, see CallbackURL
	BpmUserWorkspace        string              `json:"BpmUserWorkspace"`        // echoed
	SenderEmailAddress      string              `json:"SenderEmailAddress"`      // Creatio's key for error reports
	ServiceURL              string              `json:"ServiceUrl"`              // host, host:port or URL (EWS)
	Port                    FlexInt             `json:"Port"`                    // 0 for Exchange
	UseOAuth                FlexBool            `json:"UseOAuth"`                // log in with AccessToken
	IsAutodiscover          FlexBool            `json:"IsAutodiscover"`          // Exchange autodiscover
	AutodiscoverRedirectURL string              `json:"AutodiscoverRedirectUrl"` // a regex, despite the name
	Context                 string              `json:"Context"`                 // unquoted-key JSON text, echoed in MailboxState
	ServerTypeID            string              `json:"ServerTypeId"`            // ServerTypeIMAP or ServerTypeExchange
	UseSSL                  FlexBool            `json:"UseSsl"`                  // implicit TLS (see SecureOption)
	SubscriptionTTL         FlexInt             `json:"SubscriptionTtl"`         // unit unknown (minutes?)
	FolderClassName         string              `json:"FolderClassName"`         // folders request only
	SecureOption            *FlexInt            `json:"SecureOption"`            // MailSecureOption; nil when absent
	FolderIDs               []string            `json:"FolderIds"`               // empty: all folders
	PersonalMetrics         FlexBool            `json:"PersonalMetrics"`         // meaning unknown; passed through
	UseFullEmail            FlexBool            `json:"UseFullEmail"`            // always true in 8.x
	BpmUserTimeZone         string              `json:"BpmUserTimeZone"`         // echoed as SubscriptionInfo.TimeZoneId
	FeatureValues           map[string]FlexBool `json:"FeatureValues"`           // MarkEmailsAsSynchronized, UseBinaryData
}

// String describes c without secrets, so %v in a log line or test failure
// cannot leak a password.
func (c SynchronizationCredentials) String() string {
	return fmt.Sprintf("SynchronizationCredentials{Id:%q ServerTypeId:%q SenderEmailAddress:%q UserName:%q Password:%s AccessToken:%s}",
		c.ID, c.ServerTypeID, c.SenderEmailAddress, c.UserName, redacted(c.Password), redacted(c.AccessToken))
}

// GoString is String, for %#v.
func (c SynchronizationCredentials) GoString() string { return c.String() }

// LogValue implements slog.LogValuer: identity only, never secrets or URLs.
func (c SynchronizationCredentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("mailbox", c.ID),
		slog.String("sender", c.SenderEmailAddress),
		slog.String("server_type", c.ServerTypeID),
		slog.Bool("oauth", bool(c.UseOAuth)),
	)
}

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "<redacted>"
}

// Mailbox validates c and maps it to the domain type
// (docs/CREATIO-PROTOCOL.md §4.2). Errors are *RequestError naming the field:
//   - Id is required; it is normalized with NormalizeID.
//   - ServerTypeId selects the kind. An empty one (Creatio ~7.15 did not send
//     it, docs/CREATIO-PROTOCOL.md §4.4) means IMAP, except that an http(s)
//     ServiceUrl or IsAutodiscover=true means Exchange: those old builds used
//     the listener for Exchange, and no IMAP server is addressed by an http URL.
//   - For IMAP, Host is the bare host name extracted from ServiceUrl (which may
//     be "host", "host:993" or "imaps://host:993"), and a port in ServiceUrl is
//     used only when Port is 0. Port stays 0 when neither gives one: the IMAP
//     source then picks the default for Secure. For Exchange, Host is ServiceUrl
//     as sent (an EWS URL or server name).
//   - Secure comes from SecureOption (0..3); absent, null or out of range means
//     SecureAuto, the safe choice for old builds that predate the field.
//   - FolderIds: blank entries dropped, duplicates removed (for IMAP "inbox" in
//     any case is INBOX, RFC 3501 §5.1).
//
// Fields without a domain counterpart go to Extra under the Extra* keys.
func (c *SynchronizationCredentials) Mailbox() (*mail.Mailbox, error) {
	id := NormalizeID(c.ID)
	if id == "" {
		return nil, fieldError("Id", "credentials: Id is required")
	}
	if err := CheckID(string(id)); err != nil {
		return nil, fieldError("Id", "credentials: Id: %v", err)
	}
	serviceURL := strings.TrimSpace(c.ServiceURL)
	if len(serviceURL) > maxServiceURL {
		return nil, fieldError("ServiceUrl", "credentials: ServiceUrl is longer than %d bytes", maxServiceURL)
	}
	kind, serverType, err := c.serverKind(serviceURL)
	if err != nil {
		return nil, err
	}
	if c.Port < 0 || c.Port > 65535 {
		return nil, fieldError("Port", "credentials: Port %d out of range", c.Port)
	}
	mb := &mail.Mailbox{
		ID:              id,
		Kind:            kind,
		ServerType:      serverType,
		Host:            serviceURL,
		Port:            int(c.Port),
		UseSSL:          bool(c.UseSSL),
		Secure:          secureOption(c.SecureOption),
		UserName:        strings.TrimSpace(c.UserName),
		Password:        c.Password,
		AccessToken:     c.AccessToken,
		UseOAuth:        bool(c.UseOAuth),
		FolderIDs:       cleanFolders(c.FolderIDs, kind == mail.ServerIMAP),
		Endpoint:        strings.TrimSpace(c.BpmEndpoint),
		User:            c.BpmUser,
		Workspace:       c.BpmUserWorkspace,
		TimeZone:        c.BpmUserTimeZone,
		SenderAddress:   strings.TrimSpace(c.SenderEmailAddress),
		Context:         c.Context,
		SubscriptionTTL: int(c.SubscriptionTTL),
		Features:        features(c.FeatureValues),
		Extra:           c.extra(serviceURL),
	}
	if kind == mail.ServerIMAP {
		host, port, err := splitServiceURL(serviceURL)
		if err != nil {
			return nil, err
		}
		if len(host) > maxHostName {
			return nil, fieldError("ServiceUrl", "credentials: the host name in ServiceUrl is longer than %d bytes (RFC 1035)", maxHostName)
		}
		mb.Host = host
		if mb.Port == 0 {
			mb.Port = port
		}
	}
	return mb, nil
}

// Length bounds of ServiceUrl: a DNS name has at most 253 characters
// (RFC 1035 §2.3.4); an EWS URL is a host name plus a short path.
const (
	maxHostName   = 253
	maxServiceURL = 2048
)

// serverKind maps ServerTypeId (see Mailbox) and returns it normalized.
func (c *SynchronizationCredentials) serverKind(serviceURL string) (mail.ServerKind, string, error) {
	raw := strings.TrimSpace(c.ServerTypeID)
	id := raw
	if g, ok := normalizeGUID(raw); ok {
		id = g
	}
	switch id {
	case ServerTypeIMAP:
		return mail.ServerIMAP, id, nil
	case ServerTypeExchange:
		return mail.ServerExchange, id, nil
	case "":
		lower := strings.ToLower(serviceURL)
		if bool(c.IsAutodiscover) || strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://") {
			return mail.ServerExchange, "", nil
		}
		return mail.ServerIMAP, "", nil
	}
	return mail.ServerUnknown, id, fieldError("ServerTypeId", "credentials: unsupported server type %s", strconv.Quote(mail.Excerpt(raw, 64)))
}

func secureOption(p *FlexInt) mail.SecureOption {
	if p == nil {
		return mail.SecureAuto
	}
	switch o := mail.SecureOption(*p); o {
	case mail.SecureNone, mail.SecureAuto, mail.SecureSSL, mail.SecureStartTLS:
		return o
	}
	return mail.SecureAuto
}

// splitServiceURL extracts host and port from an IMAP ServiceUrl. The port is 0
// when absent.
func splitServiceURL(s string) (host string, port int, err error) {
	if s == "" {
		return "", 0, nil
	}
	var portText string
	if strings.Contains(s, "://") {
		u, perr := url.Parse(s)
		if perr != nil || u.Hostname() == "" {
			return "", 0, fieldError("ServiceUrl", "credentials: ServiceUrl %s is not a valid host or URL", strconv.Quote(mail.Excerpt(s, 128)))
		}
		host, portText = u.Hostname(), u.Port()
	} else {
		s = strings.TrimRight(s, "/")
		if h, p, serr := net.SplitHostPort(s); serr == nil {
			host, portText = h, p
		} else {
			host = strings.TrimSuffix(strings.TrimPrefix(s, "["), "]") // bare host or IPv6 address
		}
	}
	if portText != "" {
		port, err = strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fieldError("ServiceUrl", "credentials: ServiceUrl %s has an invalid port", strconv.Quote(mail.Excerpt(s, 128)))
		}
	}
	return host, port, nil
}

func cleanFolders(in []string, imap bool) []string {
	var out []string
	for _, f := range in {
		if strings.TrimSpace(f) == "" {
			continue
		}
		if imap && strings.EqualFold(f, "INBOX") {
			f = "INBOX"
		}
		dup := false
		for _, o := range out { // lists are short; a map would cost more
			if o == f {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, f)
		}
	}
	return out
}

func features(in map[string]FlexBool) map[string]bool {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]bool, len(in))
	for k, v := range in {
		out[k] = bool(v)
	}
	return out
}

func (c *SynchronizationCredentials) extra(serviceURL string) map[string]string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	flag := func(k string, v FlexBool) {
		if v {
			m[k] = "true"
		}
	}
	set(ExtraServiceURL, serviceURL)
	flag(ExtraIsAutodiscover, c.IsAutodiscover)
	set(ExtraAutodiscoverRedirectURL, c.AutodiscoverRedirectURL)
	set(ExtraFolderClassName, c.FolderClassName)
	flag(ExtraPersonalMetrics, c.PersonalMetrics)
	flag(ExtraUseFullEmail, c.UseFullEmail)
	if len(m) == 0 {
		return nil
	}
	return m
}
