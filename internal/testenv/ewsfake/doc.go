// SPDX-License-Identifier: Apache-2.0

// Package ewsfake is a fake Microsoft Exchange server for tests and benchmarks: EWS
// (SOAP 1.1 over HTTP(S) on 127.0.0.1) and Autodiscover for in-memory mailboxes,
// with streaming notifications and the failure modes a real server shows. It aims to
// be faithful on the wire (namespaces, element order, response classes, faults,
// chunked multi-envelope streams, NTLM) so that a client that works against it works
// against Exchange; a real client, exchangelib, checks that (TestExchangelibConformance).
//
// Use:
//
//  1. Start (or NewT in tests) listens on a random loopback port; URL is the EWS
//     endpoint, CertPEM the CA of a TLS server.
//  2. AddMailbox creates mailboxes with the usual distinguished folders; AddToken
//     registers OAuth tokens; Options.ServiceAccount may impersonate any mailbox.
//  3. Deliver puts a message into a folder as transport would and fires the
//     notifications; clients then Subscribe, GetStreamingEvents, SyncFolderItems,
//     GetItem (MIME), CreateItem (send), UpdateItem, and so on.
//  4. Items, Item, Sent and Stats show what clients did; DropStreams, Stall,
//     Restart, Busy, FailNext, ExpireSubscriptions, DisableEWS and
//     InvalidateSyncStates inject faults.
//
// Operations: GetFolder, FindFolder, GetItem, FindItem, SyncFolderItems, CreateItem,
// UpdateItem, DeleteItem, MoveItem, CopyItem, Subscribe (streaming and pull),
// Unsubscribe, GetEvents, GetStreamingEvents; Autodiscover POX and SOAP
// GetUserSettings. Any other operation is answered with an ErrorSchemaValidation
// fault and logged.
//
// Implementation notes:
//
//   - All state (mailboxes, subscriptions, streams, knobs) is guarded by one mutex,
//     held for lookups and changes only, never while writing to a connection.
//     Mailboxes and subscriptions are small records; events are appended to the
//     queues of matching subscriptions by whoever changes a mailbox. There is no
//     goroutine per subscription: each open stream's handler goroutine sleeps on a
//     timer and a kick channel, and drains the queues of its subscriptions.
//   - Ids (items, folders, sync states, watermarks) are base64 blobs carrying the
//     object's numbers and a MAC, so garbage is told apart from stale ids
//     (ErrorInvalidIdMalformed vs ErrorItemNotFound). Item ids change when an item
//     moves, as in Exchange. Subscription ids use Exchange 2013+'s layout with the
//     backend FQDN inside.
//   - A sync state is a position in a per-folder change log. Restart keeps them
//     valid; InvalidateSyncStates does not.
//   - NTLM authenticates the TCP connection (per-connection state from
//     http.Server.ConnContext); later requests on it need no Authorization header.
//   - Backends: each mailbox has a home backend; a request is routed by the
//     X-BackEndOverrideCookie (cookie or header), else X-AnchorMailbox, else the
//     mailbox acted on. Subscriptions exist only on the backend that created them.
//
// Choices where Exchange's behaviour is undocumented or was simplified:
//
//   - Stream keep-alives are Success messages carrying only ConnectionStatus OK (no
//     StatusEvent). Notifications use m:Notification and m:ErrorSubscriptionIds
//     holds m:SubscriptionId, as Exchange and its reference clients do, although the
//     schema suggests t:. Only the first envelope of a stream carries an XML
//     declaration unless Options.DeclEveryEnvelope.
//   - A refused GetStreamingEvents (unknown or foreign subscription, connection
//     limit) is one Error envelope with ConnectionStatus Closed and HTTP 200, sent
//     with Content-Length rather than chunked.
//   - A subscription serves one stream: a newer GetStreamingEvents naming it takes
//     it over, and a stream left without subscriptions closes.
//   - DropStreams announces a chunk, sends half of it and closes the TCP connection;
//     the events in that envelope are lost (clients must resync after reconnecting).
//   - DisableEWS answers HTTP 403 with an HTML body, which is what Exchange sends
//     when EWS is disabled for a mailbox (EwsEnabled false) and what Exchange
//     Online's EWS blocks look like; no SOAP body.
//   - FindItem refuses MimeContent and Attachments (ErrorInvalidPropertyRequest);
//     SyncFolderItems accepts them, because clients such as exchangelib ask for all
//     properties there, but returns neither. Both return at most 255 characters of
//     a body.
//   - The service account, when not impersonating, has full access to every
//     mailbox (it can address folders with DistinguishedFolderId/Mailbox), but has
//     no mailbox of its own.
//   - GetEvents hands out queued events once; it does not replay from an older
//     watermark.
//   - Oversized request bodies get HTTP 413 before any SOAP processing.
//
// Not implemented: attachments (GetAttachment, CreateAttachment), SendItem,
// SyncFolderHierarchy, CreateFolder/DeleteFolder as operations, push subscriptions
// (refused with ErrorInvalidSubscriptionRequest), calendar, contact and task items,
// Kerberos (SPNEGO tokens are refused; raw NTLMSSP under Negotiate works), delegate
// access to other mailboxes, FractionalPage/SeekToCondition views, grouping and AQS
// in FindItem, restrictions beyond the fields listed in restrict.go, UpdateItem of
// properties other than Categories, IsRead and Subject (accepted, logged, not
// applied; a changed Subject is not written into the stored MIME), throttling budgets other than streaming connections and subscriptions.
package ewsfake
