// SPDX-License-Identifier: Apache-2.0

// Package mail holds the domain types shared by every other package: the mailbox a
// client registered, the parsed message that is delivered, sync cursors and the
// error classes that decide retries and what the client is told. It does no I/O.
package mail

import (
	"slices"
	"strings"
	"time"
)

// MailboxID identifies a mailbox subscription. For Creatio it is the mailbox's GUID
// in lower-case "d" format; it is the key of everything stored about a mailbox.
type MailboxID string

// ServerKind says which protocol family a mailbox uses.
type ServerKind int

const (
	// ServerUnknown is a server type this service does not (yet) support.
	ServerUnknown ServerKind = iota
	// ServerIMAP is an IMAP mailbox (incoming) with SMTP for sending.
	ServerIMAP
	// ServerExchange is an Exchange (EWS) mailbox.
	ServerExchange
)

// String returns the lower-case name used in logs and metric labels.
func (k ServerKind) String() string {
	switch k {
	case ServerIMAP:
		return "imap"
	case ServerExchange:
		return "exchange"
	default:
		return "unknown"
	}
}

// SecureOption is how the connection to the mail server is secured. The values are
// Creatio's MailSecureOption enum.
type SecureOption int

const (
	SecureNone     SecureOption = 0 // plain TCP, no TLS at all
	SecureAuto     SecureOption = 1 // implicit TLS on 993, else STARTTLS when offered
	SecureSSL      SecureOption = 2 // implicit TLS
	SecureStartTLS SecureOption = 3 // STARTTLS, required
)

// Mailbox is everything the client told us about one mailbox: where its server is,
// how to log in, which folders to watch, and where to deliver. It is stored in the
// registry as is; Password and AccessToken are secrets and must never be logged.
type Mailbox struct {
	ID          MailboxID
	Kind        ServerKind
	ServerType  string // the client's server type id, kept for error messages
	Host        string // ServiceUrl: host name, host:port or URL
	Port        int
	UseSSL      bool
	Secure      SecureOption
	UserName    string
	Password    string
	AccessToken string
	UseOAuth    bool
	FolderIDs   []string // empty: all mail folders (see the IMAP source for exclusions)

	// Delivery target and identity echoed back to the client.
	Endpoint      string // Creatio BpmEndpoint (…/ExchangeListenerService.svc/ProcessFullEmail)
	User          string // BpmUser
	Workspace     string // BpmUserWorkspace
	TimeZone      string // BpmUserTimeZone
	SenderAddress string // SenderEmailAddress
	Context       string // opaque client context, echoed in state reports

	SubscriptionTTL int               // minutes as sent by the client; informational
	Features        map[string]bool   // FeatureValues
	Extra           map[string]string // fields we keep but do not interpret

	// Client is who registered the mailbox and how its mail is delivered:
	// "" for Creatio (Endpoint), ClientNative for the native API (signed
	// webhooks to WebhookURL). WebhookSecret is a secret like Password.
	Client        string
	WebhookURL    string
	WebhookSecret string
	// WebhookEvents lists the event types a native account wants (empty:
	// all); WebhookRaw asks for message.new events with the raw MIME instead
	// of the parsed email; attachments up to WebhookInlineMax bytes travel
	// inside events (0: the service's default, negative: none), larger ones
	// as links to fetch them.
	WebhookEvents    []string
	WebhookRaw       bool
	WebhookInlineMax int
	// SMTP is where a native account sends mail (nil: it cannot send).
	// Creatio sends with credentials of its own on every call instead.
	SMTP *Server
	// OAuth2 is how a native account with UseOAuth gets fresh access
	// tokens (Creatio's mailboxes get theirs from Creatio instead).
	OAuth2 *OAuth2
}

// OAuth2 is an OAuth 2.0 client and the refresh token it redeems at
// TokenURL for access tokens (RFC 6749 section 6). ClientSecret and
// RefreshToken are secrets like Password.
type OAuth2 struct {
	TokenURL     string
	ClientID     string
	ClientSecret string
	RefreshToken string
	Scopes       []string
}

// sameClient reports whether a and b are the same OAuth client (the
// refresh token aside: providers rotate it on every refresh).
func sameClient(a, b *OAuth2) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.TokenURL == b.TokenURL && a.ClientID == b.ClientID && a.ClientSecret == b.ClientSecret &&
		slices.Equal(a.Scopes, b.Scopes)
}

// Server is a mail server and the login on it.
type Server struct {
	Host     string
	Port     int
	Secure   SecureOption
	UserName string
	Password string
}

// Wants reports whether a native account subscribed to events of type typ.
func (m *Mailbox) Wants(typ string) bool {
	return len(m.WebhookEvents) == 0 || slices.Contains(m.WebhookEvents, typ)
}

// ClientNative marks a mailbox registered through the native API (/v1/):
// its emails go to its webhook, not to Creatio.
const ClientNative = "native"

// Native reports whether m was registered through the native API.
func (m *Mailbox) Native() bool { return m.Client == ClientNative }

// SameConnection reports whether m and o would open the same server session
// and deliver the same way, so that a re-registration with identical settings
// need not restart a healthy subscription.
func (m *Mailbox) SameConnection(o *Mailbox) bool {
	if m.Kind != o.Kind || m.Host != o.Host || m.Port != o.Port || m.UseSSL != o.UseSSL ||
		m.Secure != o.Secure || m.UserName != o.UserName || m.Password != o.Password ||
		m.AccessToken != o.AccessToken || m.UseOAuth != o.UseOAuth || len(m.FolderIDs) != len(o.FolderIDs) ||
		m.Client != o.Client || m.WebhookURL != o.WebhookURL || m.WebhookSecret != o.WebhookSecret ||
		m.WebhookRaw != o.WebhookRaw || m.WebhookInlineMax != o.WebhookInlineMax ||
		!slices.Equal(m.WebhookEvents, o.WebhookEvents) || (m.SMTP == nil) != (o.SMTP == nil) ||
		(m.SMTP != nil && *m.SMTP != *o.SMTP) || !sameClient(m.OAuth2, o.OAuth2) {
		return false
	}
	for i := range m.FolderIDs {
		if m.FolderIDs[i] != o.FolderIDs[i] {
			return false
		}
	}
	return true
}

// Cursor is the sync position of one folder: everything before it has been
// acknowledged by the client. Data is opaque here; the source adapter of the
// mailbox's protocol encodes and reads it (IMAP: UIDVALIDITY, last UID and
// the date of the newest message; Exchange: a SyncState; Graph: a delta
// link). Stores keep it as text.
type Cursor struct {
	Data string
	// Fence is the lease fencing token of the writer: the monotonic number the
	// node got with its lease on the mailbox. A store rejects a cursor write whose
	// Fence is lower than the one stored with that folder's cursor, so a paused or
	// partitioned former owner cannot move a cursor backwards. A single node
	// without leases writes 0.
	Fence uint64
}

// Folder is one folder of a mailbox.
type Folder struct {
	// Name identifies the folder; it is what the client sends back in
	// FolderIds: the full path (UTF-8) on IMAP, the folder id on Exchange.
	Name string
	// Display and Parent describe the tree when Name is an opaque id
	// (Exchange): the name shown to users and the parent's Name. Empty: the
	// tree follows from Name and Delim.
	Display, Parent string
	Delim           rune // hierarchy delimiter, 0 when flat
	Attrs           []string
	Selectable      bool
	// Inbox marks the mailbox's inbox when its Name does not say so
	// (Exchange); on IMAP it is the folder named INBOX.
	Inbox bool
}

// IsInbox reports whether f is the mailbox's inbox.
func (f *Folder) IsInbox() bool { return f.Inbox || strings.EqualFold(f.Name, "INBOX") }

// Query selects messages of a folder for a history load. The zero value
// matches everything; a source that cannot apply a criterion fails the query
// with a ClassConfig error rather than widening it silently.
type Query struct {
	Since     time.Time // day granularity for IMAP (SINCE / SENTSINCE), an instant elsewhere
	SentSince bool      // Since applies to the Date header, not the arrival date
	NotFlags  []string  // exclude messages with any of these flags or keywords (\Draft, \Deleted, a keyword)
	UIDFrom   uint32    // IMAP only: UIDs >= UIDFrom; 0 = no limit
}

// Mode says how a registration relates to an existing subscription of the
// same mailbox.
type Mode int

const (
	// ModeCreate starts a subscription; an identical running one is kept.
	ModeCreate Mode = iota
	// ModeRecreate restarts the subscription when its settings changed; an
	// identical one is kept (and retried at once if it failed).
	ModeRecreate
	// ModeUpdate swaps credentials (e.g. a fresh OAuth token) without a restart
	// when only secrets changed; the next (re)connect uses them.
	ModeUpdate
)

// String names the mode as in the API paths.
func (m Mode) String() string {
	switch m {
	case ModeRecreate:
		return "recreate"
	case ModeUpdate:
		return "update"
	default:
		return "create"
	}
}

// Address is one mailbox address with its optional display name.
type Address struct {
	Name    string
	Address string
}

// String renders the address as `Name <addr>` or the bare address, the
// way MailKit's MailboxAddress.ToString() shows it to .NET code: a display
// name with RFC 5322 specials (a comma, a dot, quotes, …) in double quotes
// with '\\' and '"' escaped, so "Doe, John" stays one address; other names,
// non-ASCII ones included, as they are.
func (a Address) String() string {
	if a.Name == "" {
		return a.Address
	}
	if a.Address == "" {
		return a.Name
	}
	return quotePhrase(a.Name) + " <" + a.Address + ">"
}

// quotePhrase quotes a display name that needs it.
func quotePhrase(name string) string {
	if !strings.ContainsAny(name, "()<>[]:;@\\,.\"") {
		return name
	}
	var b strings.Builder
	b.Grow(len(name) + 4)
	b.WriteByte('"')
	for i := 0; i < len(name); i++ {
		if name[i] == '\\' || name[i] == '"' {
			b.WriteByte('\\')
		}
		b.WriteByte(name[i])
	}
	b.WriteByte('"')
	return b.String()
}

// Header is one message header field, decoded to UTF-8.
type Header struct {
	Name  string
	Value string
}

// Importance is a message's priority, with Creatio's enum values.
type Importance int

const (
	ImportanceNone   Importance = 0
	ImportanceNormal Importance = 1
	ImportanceHigh   Importance = 2
	ImportanceLow    Importance = 3
)

// Attachment is one attached or inline file.
type Attachment struct {
	Name        string
	ContentType string
	ContentID   string // without angle brackets; set for parts referenced by cid:
	Inline      bool
	Data        []byte
}

// Message is a parsed email, ready to be encoded for the client.
type Message struct {
	MessageID  string // with angle brackets; never empty (synthesized when missing)
	Subject    string
	From       Address
	To         []Address
	Cc         []Address
	Bcc        []Address
	ReplyTo    []Address
	Date       time.Time // Date header, UTC; zero when absent or unparsable
	InReplyTo  string
	References string
	Headers    []Header
	Importance Importance
	HTML       string
	Text       string
	// Attachments in the order they appear in the message.
	Attachments []Attachment
	// Size is the raw message size in bytes.
	Size int
	// Folder and SourceID say where the message was fetched from (the
	// folder's name and the message's id in it, e.g. the IMAP UID); set by
	// the ingest step, empty when the message did not come from a folder.
	Folder, SourceID string
	// Warnings lists what the parser had to repair; informational.
	Warnings []string
	// Raw is the message as downloaded, set by the ingest step for clients
	// that asked for it (native accounts with WebhookRaw); nil otherwise.
	Raw []byte
}

// MarkTruncated notes that only the message's header was fetched (it is over
// the size limit): a warning, and a placeholder text when no body came with
// the header.
func (m *Message) MarkTruncated() {
	m.Warnings = append(m.Warnings, "message exceeds the size limit: only its header was fetched")
	if m.HTML == "" && m.Text == "" {
		m.Text = "This message is too large to be synchronized; open it in your mail client."
	}
}
