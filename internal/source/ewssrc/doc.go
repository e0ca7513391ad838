// SPDX-License-Identifier: Apache-2.0

// Package ewssrc serves Exchange mailboxes over EWS (Exchange Web Services)
// through the protocol-neutral source contract that syncer, history and
// service declare: the Exchange counterpart of source/imapsrc. It speaks EWS
// through package ews and finds endpoints with ews/autodiscover.
//
// How a mailbox is served:
//
//   - Open resolves the EWS URL (ServiceUrl, or Autodiscover when the client
//     asks for it), logs in (Basic, NTLM or an OAuth bearer token) by reading
//     the inbox, and returns a Session that calls EWS with the mailbox's own
//     credentials.
//   - Changes walks a folder with SyncFolderItems from the folder's SyncState,
//     which is the cursor (cursor.go); Fetch downloads an item's MIME with
//     GetItem; history loads search with FindItem on DateTimeReceived.
//   - New mail is pushed by a streaming subscription: Wait subscribes the
//     watched folders on its first call and then waits for the hub (hub.go)
//     to report a notification. The hub holds the long-lived
//     GetStreamingEvents connections. Without an impersonation account each
//     mailbox has one of its own, made with its own credentials; with one,
//     up to GroupSize mailboxes of one server share a connection made by that
//     account, kept on one backend with Exchange's affinity cookie.
//   - After any gap in a stream (cut, lost subscription, server restart) the
//     hub resubscribes where needed and tells the mailboxes to catch up from
//     their SyncStates: the SyncState, not the notification, decides what is
//     delivered, so a lost notification delays mail and never loses it.
//   - ErrorServerBusy is waited out for as long as the server asks, up to a
//     patience (call.go), so throttling never shows as a mailbox failure.
package ewssrc
