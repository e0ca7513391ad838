package creatio

import (
	"github.com/emaillistener/emaillistener/internal/mail"
)

// MailboxInfo is the body of RefreshToken (docs/CREATIO-PROTOCOL.md §11.7): Creatio logs in as
// BpmUserName, rebuilds the credentials (refreshing the OAuth token) and calls
// POST /api/listeners/update with them.
type MailboxInfo struct {
	MailboxID          string `json:"MailboxId"`
	SenderEmailAddress string `json:"SenderEmailAddress"` // Creatio's key for the mailbox
	BpmUserName        string `json:"BpmUserName"`        // credentials BpmUser
	BpmUserWorkspace   string `json:"BpmUserWorkspace"`
}

// NewMailboxInfo builds the RefreshToken body for mb.
func NewMailboxInfo(mb *mail.Mailbox) MailboxInfo {
	return MailboxInfo{
		MailboxID:          string(mb.ID),
		SenderEmailAddress: mb.SenderAddress,
		BpmUserName:        mb.User,
		BpmUserWorkspace:   mb.Workspace,
	}
}

// MailboxState is the body of ProcessMailboxState (docs/CREATIO-PROTOCOL.md §11.6): a mailbox failed
// (Avaliable=false, with the exception class Creatio matches against its
// SyncErrorHandler table, docs/CREATIO-PROTOCOL.md §13.3) or recovered (Avaliable=true). Creatio's
// .NET class derives from MailboxInfo; the JSON is flat.
type MailboxState struct {
	MailboxID          string `json:"MailboxId"`
	SenderEmailAddress string `json:"SenderEmailAddress"` // Creatio finds the mailbox by this
	BpmUserName        string `json:"BpmUserName"`
	BpmUserWorkspace   string `json:"BpmUserWorkspace"`
	Avaliable          bool   `json:"Avaliable"`          //nolint:misspell // Creatio's spelling
	ExceptionClassName string `json:"ExceptionClassName"` // see ExceptionClassName
	ExceptionMessage   string `json:"ExceptionMessage"`   // matched against handler MessageFilter
	// Context is the credentials' Context echoed verbatim: Creatio reads
	// UserRequested from it to apply an error at once instead of counting retries.
	Context string `json:"Context"`
}

// NewMailboxState builds the ProcessMailboxState body for mb. For a recovery
// pass available=true and empty className and message.
func NewMailboxState(mb *mail.Mailbox, available bool, className, message string) MailboxState {
	return MailboxState{
		MailboxID:          string(mb.ID),
		SenderEmailAddress: mb.SenderAddress,
		BpmUserName:        mb.User,
		BpmUserWorkspace:   mb.Workspace,
		Avaliable:          available,
		ExceptionClassName: className,
		ExceptionMessage:   message,
		Context:            mb.Context,
	}
}

// NewMailboxStateForError is NewMailboxState for the outcome err: nil reports
// the mailbox available, anything else unavailable with the class name of
// mail.ClassOf(err) and err's text as the message.
func NewMailboxStateForError(mb *mail.Mailbox, err error) MailboxState {
	if err == nil {
		return NewMailboxState(mb, true, "", "")
	}
	return NewMailboxState(mb, false, ExceptionClassName(mail.ClassOf(err)), err.Error())
}

// ExceptionClassName returns the .NET exception type name reported to Creatio
// for an error class (MailboxState.ExceptionClassName, docs/CREATIO-PROTOCOL.md §11.6, §13.4).
//
// The original listener is a .NET service built on MailKit, so Creatio's
// SyncErrorHandler rows (admin-visible lookup data; the seed rows are not public,
// docs/CREATIO-PROTOCOL.md §16) match MailKit and BCL type names. Creatio compares the last
// dot-separated segment of the name case-insensitively, so the fully qualified
// names below also match rows holding the short name:
//
//	class     ExceptionClassName
//	auth      MailKit.Security.AuthenticationException
//	tls       MailKit.Security.SslHandshakeException
//	certificate  Terrasoft.Configuration.BaseSslWarningException
//	connect   System.Net.Sockets.SocketException
//	timeout   System.TimeoutException
//	protocol  MailKit.Net.Imap.ImapProtocolException
//	config    System.ArgumentException
//	internal  System.Exception (also any unknown class)
//
// Check the table against the target instance's SyncErrorHandler lookup.
func ExceptionClassName(c mail.ErrorClass) string {
	switch c {
	case mail.ClassAuth:
		return "MailKit.Security.AuthenticationException"
	case mail.ClassTLS:
		return "MailKit.Security.SslHandshakeException"
	case mail.ClassCertificate:
		// Creatio ships a SyncErrorHandler row for exactly this class (message
		// "invalid SSL certificate (expired, self-signed or SHA1)", action
		// ManualDismiss, docs/CREATIO-PROTOCOL.md §13.3): an untrusted certificate then shows
		// Creatio's own warning instead of a generic error.
		return "Terrasoft.Configuration.BaseSslWarningException"
	case mail.ClassConnect:
		return "System.Net.Sockets.SocketException"
	case mail.ClassTimeout:
		return "System.TimeoutException"
	case mail.ClassProtocol:
		return "MailKit.Net.Imap.ImapProtocolException"
	case mail.ClassConfig:
		return "System.ArgumentException"
	}
	return "System.Exception"
}
