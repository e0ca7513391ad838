// SPDX-License-Identifier: Apache-2.0

// Package graphsrc serves Exchange Online mailboxes over Microsoft Graph
// through the protocol-neutral source contract that syncer, history and
// service declare: the Graph counterpart of source/ewssrc, for the tenants
// Microsoft no longer lets use EWS. It speaks Graph through package graph.
//
// How a mailbox is served:
//
//   - The Adapter holds one Graph client for the service's application
//     (client credentials; its tokens serve every mailbox of the tenant) and
//     gives mailboxes whose Creatio token is itself a Graph token a client
//     of their own. A mailbox is addressed by its e-mail address as
//     /users/{address}.
//   - Open reads the inbox (the login check), and translates the EWS folder
//     ids Creatio stored for the mailbox into Graph ids (ConfiguredFolders).
//   - Changes follows each watched folder's delta round; the deltaLink is
//     the cursor (cursor.go). A new subscription starts with a round bounded
//     to mail received since it started, so it delivers new mail only; a
//     dead link (410 Gone) starts a new round from the server's Location
//     that passes over what was already acknowledged.
//   - New mail is noticed by the poller (poller.go): every PollInterval it
//     asks for every waiting mailbox's delta pages in JSON batches of up to
//     20 requests, and hands a page with news to the mailbox, whose Changes
//     then uses it instead of asking again. With a public notification URL
//     the service also subscribes each watched folder to Graph change
//     notifications (webhook.go), which wake a mailbox at once; polling then
//     only runs rarely, to catch what a lost notification left behind.
//   - Throttling (429, 503 with Retry-After) is waited out for as long as
//     Graph asks, within a patience; the client keeps at most four requests
//     per mailbox in flight, Outlook's limit.
package graphsrc
