// SPDX-License-Identifier: Apache-2.0

// Package graph is a Microsoft Graph client for Exchange Online mail with
// exactly the calls the listener needs: the folder tree, per-folder delta
// sync, a bounded date-ordered listing, a message as MIME or its header
// only, sending a MIME message, tagging a message with a category, change
// notification subscriptions and the parsing of what they deliver, the
// translation of EWS ids, and JSON batching (several mailboxes' delta
// requests in one HTTP request).
//
// A listener uses it in this order:
//
//  1. AppTokens (client credentials of an Entra ID app) or StaticToken
//     supplies bearer tokens; New builds a Client (no I/O).
//  2. Folders lists a mailbox's folders; Folder resolves one by id or
//     well-known name ("inbox").
//  3. Delta with an empty link starts a round for a folder, optionally
//     bounded by a receivedDateTime; the pages' Next links are followed
//     until a page carries a DeltaLink, which is persisted and passed to
//     Delta at the next check. DeltaBatch does the same for up to 20
//     mailboxes per HTTP request. ErrSyncReset means the link is dead:
//     start a new round.
//  4. MIME downloads new messages (bounded; a larger one comes back with its
//     header block only), Headers reads the header of one too large to take.
//  5. Subscribe asks Graph to POST change notifications to a public HTTPS
//     endpoint; the service answers the validation handshake with
//     ValidationResponse, reads deliveries with ParseNotifications, checks
//     their ClientState, and reacts by running Delta. Renew keeps a
//     subscription alive, Reauthorize answers reauthorizationRequired,
//     Unsubscribe ends it.
//
// Every request addresses a mailbox as /users/{id or userPrincipalName},
// asks for immutable ids (Prefer: IdType="ImmutableId"), so that an id
// survives a move of its message within the mailbox, and carries a fresh
// client-request-id that errors quote next to Graph's request-id for
// support cases.
//
// Outlook allows an app four concurrent requests per mailbox; the Client
// keeps at most Options.MaxConcurrentPerMailbox requests to one mailbox in
// flight and queues the others (callers wait, bounded by their context).
//
// The server is not trusted: every response read is bounded (ordinary ones
// by Options.MaxResponseBytes, a MIME download by its limit, error bodies to
// 64 KiB), every request has a deadline (Options.Timeout), and links the
// server hands out (@odata.nextLink, @odata.deltaLink, a reset's Location)
// are followed only on the scheme and host of Options.BaseURL, so that a
// hostile or confused peer cannot make the Client send its bearer token
// elsewhere. Errors are *mail.Error values whose class decides the caller's
// reaction; the Graph detail is inside (APIError, ResetError, TokenError)
// and reachable with errors.As, and the conditions callers branch on are
// sentinels for errors.Is. No error text contains a token, a secret or a
// request body.
//
// Wire types and options evolve additively.
package graph
