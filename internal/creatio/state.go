// SPDX-License-Identifier: Apache-2.0

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
	return NewMailboxState(mb, false, ExceptionClassName(mb.Kind, mail.ClassOf(err)), err.Error())
}

// ExceptionClassName returns the .NET exception type name reported to Creatio
// for a failure of class c on a mailbox of kind k
// (MailboxState.ExceptionClassName, docs/CREATIO-PROTOCOL.md §11.6, §13.4).
//
// The original listener is a .NET service: MailKit for IMAP, the EWS Managed
// API for Exchange. Creatio's SyncErrorHandler rows (admin-visible lookup data;
// the seed rows are not public, docs/CREATIO-PROTOCOL.md §16) match those type
// names. Creatio compares the last dot-separated segment of the name
// case-insensitively, so the fully qualified names below also match rows
// holding the short name:
//
//	class        IMAP                                    Exchange
//	auth         MailKit.Security.AuthenticationException  Microsoft.Exchange.WebServices.Data.ServiceRequestException
//	tls          MailKit.Security.SslHandshakeException    System.Security.Authentication.AuthenticationException
//	certificate  Terrasoft.Configuration.BaseSslWarningException (both)
//	connect      System.Net.Sockets.SocketException        System.Net.WebException
//	timeout      System.TimeoutException (both)
//	protocol     MailKit.Net.Imap.ImapProtocolException    Microsoft.Exchange.WebServices.Data.ServiceResponseException
//	config       System.ArgumentException (both)
//	internal     System.Exception (both; also any unknown class)
//
// The EWS Managed API reports a rejected login as a ServiceRequestException
// whose message says "(401) Unauthorized"; the Exchange adapter's messages say
// so too, so rows that filter on that text match. Check the table against the
// target instance's SyncErrorHandler lookup.
func ExceptionClassName(k mail.ServerKind, c mail.ErrorClass) string {
	switch c {
	case mail.ClassCertificate:
		// Creatio ships a SyncErrorHandler row for exactly this class (message
		// "invalid SSL certificate (expired, self-signed or SHA1)", action
		// ManualDismiss, docs/CREATIO-PROTOCOL.md §13.3): an untrusted certificate then shows
		// Creatio's own warning instead of a generic error.
		return "Terrasoft.Configuration.BaseSslWarningException"
	case mail.ClassTimeout:
		return "System.TimeoutException"
	case mail.ClassConfig:
		return "System.ArgumentException"
	}
	if k == mail.ServerExchange {
		switch c {
		case mail.ClassAuth:
			return "Microsoft.Exchange.WebServices.Data.ServiceRequestException"
		case mail.ClassTLS:
			return "System.Security.Authentication.AuthenticationException"
		case mail.ClassConnect:
			return "System.Net.WebException"
		case mail.ClassProtocol:
			return "Microsoft.Exchange.WebServices.Data.ServiceResponseException"
		}
		return "System.Exception"
	}
	switch c {
	case mail.ClassAuth:
		return "MailKit.Security.AuthenticationException"
	case mail.ClassTLS:
		return "MailKit.Security.SslHandshakeException"
	case mail.ClassConnect:
		return "System.Net.Sockets.SocketException"
	case mail.ClassProtocol:
		return "MailKit.Net.Imap.ImapProtocolException"
	}
	return "System.Exception"
}
