// SPDX-License-Identifier: Apache-2.0

// Package graphfake is a fake Microsoft Graph for tests and benchmarks: the mail
// part of the v1.0 API (folders, messages, delta query, MIME download, sendMail,
// translateExchangeIds), change notification subscriptions with webhook
// delivery and lifecycle events, JSON batching, Outlook's throttling, and the
// Microsoft Entra ID token endpoint for the client-credentials grant, all for
// in-memory mailboxes over HTTP(S) on 127.0.0.1. It aims to be faithful on the
// wire (JSON names, @odata annotations, error bodies, status codes, headers) so
// that a client that works against it works against Graph.
//
// Use:
//
//  1. Start (or NewT in tests) listens on a random loopback port. URL is the
//     Graph root with its version (http://127.0.0.1:PORT/v1.0), LoginURL the
//     authority (the token endpoint is LoginURL()+"/"+Tenant()+
//     "/oauth2/v2.0/token"), CertPEM the CA of a TLS server. Tenant, ClientID
//     and ClientSecret are the one registered application's credentials;
//     DelegatedToken makes a user's token without any login flow.
//  2. AddMailbox creates users with the well-known folders (msgfolderroot and
//     below it inbox, sentitems, drafts, deleteditems, junkemail, archive,
//     outbox); CreateFolder adds more.
//  3. Deliver puts a message into a folder as transport would: it is logged for
//     delta queries and notified to subscriptions. Delete, Move and MarkRead
//     change messages behind the client's back.
//  4. Message, Messages, Sent, Subscriptions and Stats show what clients did;
//     ThrottleNext, FailNext, Stall, ExpireDeltaTokens, DropNotifications,
//     RemoveSubscriptions, RequireReauthorization and SendMissed inject faults.
//
// Endpoints (below /v1.0; /me/… works with delegated tokens):
//
//	GET    /users/{id|upn}                                     user
//	GET    /users/{u}/mailFolders[/{id}[/childFolders]]        folders ($top, $skip, includeHiddenFolders)
//	POST   /users/{u}/mailFolders[/{id}/childFolders]          create folder
//	GET    /users/{u}/mailFolders/{id}/messages/delta          delta query
//	GET    /users/{u}[/mailFolders/{id}]/messages              list ($filter, $orderby, $top, $skip, $select)
//	GET    /users/{u}/messages/{id}[/$value]                   message, MIME
//	PATCH  /users/{u}/messages/{id}                            categories, isRead
//	DELETE /users/{u}/messages/{id}                            to Deleted Items (from there: for good)
//	POST   /users/{u}/messages/{id}/move                       move
//	POST   /users/{u}/sendMail                                 MIME (base64 text/plain) or JSON
//	POST   /users/{u}/translateExchangeIds                     id formats
//	GET    POST /subscriptions; GET PATCH DELETE /subscriptions/{id}; POST /subscriptions/{id}/reauthorize
//	POST   /$batch                                             JSON batching
//
// Folders are addressed by id or well-known name, also in key syntax
// (mailFolders('inbox')); any other path is answered 400 "Resource not found for
// the segment", a wrong method 405.
//
// Implementation notes:
//
//   - All state (mailboxes, subscriptions, notification queues, knobs, counters)
//     is guarded by one mutex, held for lookups and changes only, never while
//     talking to the network. Requests from HTTP and from $batch run through one
//     pipeline (serveAPI): programmed faults, authentication, routing,
//     permissions, the mailbox's throttling budget, Stall, the operation.
//   - Every request body is bounded by Options.MaxRequestBytes (413 beyond), the
//     token endpoint's by 64 KiB; what the fake reads from notification
//     receivers is bounded too.
//   - Ids are base64 blobs with the object's numbers and a MAC (see ids.go), so
//     a garbled id (400 ErrorInvalidIdMalformed) is told apart from one of a
//     message that is gone (404 ErrorItemNotFound). Message ids handed out are
//     always immutable ids (Prefer: IdType="ImmutableId" is echoed in
//     Preference-Applied when asked for); default REST ids, as produced by
//     translateExchangeIds, are accepted too and stop working when the message
//     moves. EWS ids are the same bytes in standard base64 (EWSFolderID,
//     EWSMessageID make them).
//   - Each folder keeps a log of its last Options.DeltaLogLimit changes. Delta
//     and skip tokens are sealed positions in that log plus the round's query
//     options; a token older than the log, or issued before ExpireDeltaTokens,
//     gets 410 Gone with code syncStateNotFound and a Location header holding a
//     new initial round's URL. A garbled token is 400 "Badly formed token.".
//   - Notifications are queued per URL and POSTed in batches by short-lived
//     workers (at most Options.NotifyParallel per URL); there is no goroutine
//     per subscription. Failed POSTs are retried with a doubling backoff.
//   - Access tokens are JWT-shaped (header.payload.signature) with Entra ID's
//     claims (aud, tid, appid, roles or scp, upn, exp), but HMAC-signed by the
//     fake: clients must not look inside Graph tokens anyway.
//
// Choices where Graph's behaviour is undocumented or was simplified:
//
//   - Throttling: Outlook's per-mailbox limits (Options.MailboxConcurrency
//     concurrent requests, Options.MailboxRequestLimit per
//     Options.RequestWindow, a fixed window) answer 429 ApplicationThrottled with
//     Retry-After; ThrottleNext answers Graph's global 429 TooManyRequests. A
//     $batch runs four of its requests at a time, each counted on its own.
//   - FailNext and ThrottleNext hit API requests (each batched one on its own),
//     not the $batch envelope nor the token endpoint. Stall holds requests after
//     admission, so held requests occupy their mailbox's concurrency slots.
//   - Notification URLs must be loopback http or https URLs (Graph requires
//     public HTTPS); the validation answer must be 200, text/plain, the decoded
//     token (surrounding white space ignored). A lifecycle URL equal to the
//     notification URL is validated once.
//   - Notifications never carry resource data (includeResourceData is refused);
//     the notified id is the immutable id. Updates are notified for categories
//     and isRead changes; moves notify "deleted" in the old folder and "created"
//     in the new one. Expired subscriptions stop notifying and are pruned.
//   - sendMail records the transmitted MIME (Bcc removed, Message-ID and Date
//     added when missing) for Sent, saves a copy to Sent Items and delivers to
//     recipients that are mailboxes of the fake. From must be the mailbox's own
//     address (else 403 ErrorSendAsDenied). The JSON form supports subject,
//     text or HTML body and recipients; attachments are left out.
//   - bodyPreview and body are the first text part (HTML stripped of tags);
//     hasAttachments means a part with Content-Disposition attachment;
//     Mail.ReadBasic does not hide bodies. $select on folders is accepted and
//     not applied; unknown $select names on messages are ignored.
//   - Of the $batch request's own headers only Authorization applies to the
//     requests inside (Prefer and the rest go in each request's headers). A
//     batched request's string body is taken as is for text and JSON content
//     types and base64-decoded otherwise; a non-JSON answer body is returned in
//     base64.
//   - The token endpoint issues tokens for any resource's "/.default" scope
//     (Graph then refuses the audience of non-Graph tokens); roles come from
//     Options.Roles.
//
// Not implemented: attachments, drafts (POST /messages, send of a draft),
// calendar and contacts, mailFolder delta, $search, $expand, $count, rich
// notifications, Event Hubs delivery, the 150 MB upload budget, certificate and
// assertion client credentials, authorization-code and refresh flows.
package graphfake
