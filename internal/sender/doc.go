// SPDX-License-Identifier: Apache-2.0

// Package sender sends an outgoing email over SMTP on behalf of a mailbox: the
// SendCommand Creatio posts to /apiv2/email/send (docs/CREATIO-PROTOCOL.md
// §10), mapped to a *mail.Message by creatio.Email.Message.
//
// Send works in these steps, each bounded by a timeout and aborted when the
// caller's context ends (the connection is closed, which unblocks go-smtp):
//
//  1. Build the RFC 5322 message (Build): Creatio's Message-ID, From, To and Cc
//     (never Bcc), Subject in RFC 2047, the HTML body with a plain-text
//     alternative, inline images in multipart/related so that cid: references
//     resolve, attachments with RFC 2231 file names.
//  2. Connect to the mailbox's SMTP server as its security settings say
//     (ResolveEndpoint): implicit TLS, required STARTTLS, opportunistic
//     STARTTLS, or plain text.
//  3. EHLO, then authenticate when a user name is set and the server offers
//     AUTH: XOAUTH2 with the access token for OAuth mailboxes, else PLAIN, else
//     LOGIN.
//  4. MAIL FROM the sender address (with SIZE), RCPT TO every To, Cc and Bcc
//     address. If the server refuses any recipient, nothing is sent (RSET): see
//     Send for why.
//  5. DATA with the built message; QUIT.
//
// Every failure is a *mail.Error whose class says what went wrong (auth, tls,
// connect, timeout, protocol, config) and which wraps an *Error carrying the
// SMTP reply; UserMessage turns it into a sentence a CRM user can act on.
// Passwords and tokens are never logged nor put into errors.
//
// The SMTP server is not trusted: it may send at most 1 MiB in a session
// (limit.go) and 2,000 bytes per reply line (go-smtp's own limit), and
// Options.Control can refuse a server's address before connecting (a network
// allow-list); either failure is a classified error, never a retry loop.
package sender
