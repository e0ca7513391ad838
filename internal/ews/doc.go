// SPDX-License-Identifier: Apache-2.0

// Package ews is an EWS (Exchange Web Services) SOAP client with exactly the
// operations the listener needs: list folders (GetFolder, FindFolder), learn
// what changed in a folder (SyncFolderItems, FindItem), download a message as
// MIME or its header only (GetItem), send a MIME message (CreateItem), tag an
// item with a category (UpdateItem), and keep a live channel of new-mail
// events (Subscribe, GetStreamingEvents, Unsubscribe).
//
// A listener uses it in this order:
//
//  1. New builds a Client for one EWS URL and one set of credentials (no I/O).
//  2. SyncFolderItems (or FindItems for a bounded backfill) brings a folder's
//     sync state up to date.
//  3. Subscribe opens a streaming subscription; Stream then reads its events,
//     one SOAP envelope at a time, until the server closes the response
//     (at most 30 minutes), after which Stream is called again with the same
//     subscription ids.
//  4. On events it calls SyncFolderItems again and GetMIME for new items.
//  5. When Stream reports ErrSubscriptionLost it subscribes afresh and resyncs.
//
// Every request is a SOAP 1.1 POST. Exchange validates each request against
// its schema, in which every complex type is an ordered sequence: the request
// writers emit children in schema order, and every value that comes from
// outside (ids, addresses, category names) is XML-escaped. Responses are read
// namespace- and prefix-agnostically and in any child order, because servers
// and their documentation disagree on both.
//
// The server is not trusted: every response read is bounded (ordinary
// responses by Options.MaxResponseBytes, a MIME download by its limit, each
// streamed envelope to 1 MiB), every request except the stream has
// a deadline (Options.Timeout), and the stream has an idle timer instead.
// Errors are *mail.Error values whose class decides the caller's reaction;
// the EWS detail is inside (ResponseError, Fault, StatusError) and reachable
// with errors.As, and the conditions callers branch on are sentinels for
// errors.Is. No error text contains a password, token or request body.
//
// Wire types and options evolve additively.
package ews
