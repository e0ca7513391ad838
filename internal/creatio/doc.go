// SPDX-License-Identifier: Apache-2.0

// Package creatio is the Creatio wire format in one place. Comments cite the
// reconstructed contract, docs/CREATIO-PROTOCOL.md, by section
// ("docs/CREATIO-PROTOCOL.md §n"). It owns:
//
//   - Decode: lenient JSON decoding of Creatio's request bodies, which come
//     with unquoted property names (Newtonsoft QuoteName=false,
//     docs/CREATIO-PROTOCOL.md §5), and FlexInt/FlexBool for scalars .NET may
//     send as strings. Errors are *RequestError, which the HTTP layer maps to
//     400.
//   - The request DTOs (SynchronizationCredentials, SyncEmailsCommand,
//     SendCommand) and their mapping to domain types (Mailbox, Email.Message,
//     SyncEmailsCommand.Filter).
//   - The callback DTOs (LoadEmailCommand with Email and Attachment,
//     MailboxState, MailboxInfo), their construction from domain types, the
//     callback URLs (CallbackURL) and the .NET exception names Creatio matches
//     errors by (ExceptionClassName).
//   - The response DTOs (ServiceStatus, SubscriptionState,
//     CredentialsValidationInfo, MailboxFolder).
//   - .NET ticks (Ticks, FromTicks).
//
// The JSON names, including Creatio's misspellings (Recepients, Avaliable), are
// part of the contract and must not change. Outbound DTOs are written with
// encoding/json, with exact names and no omitempty on fields Creatio reads.
// Changes are additive only.
//
// The package is pure: no network or file I/O, no global state, safe for
// concurrent use.
package creatio
