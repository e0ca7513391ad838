// SPDX-License-Identifier: Apache-2.0

package graphsrc

import (
	"errors"
	"fmt"

	"github.com/emaillistener/emaillistener/internal/graph"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// Describe turns a failed Graph call into a sentence for the client's
// diagnostics page (validate, folders, send): which mailbox, and what the
// administrator checks.
func Describe(mb *mail.Mailbox, err error) string {
	who := mail.Excerpt(address(mb), 300)
	var api *graph.APIError
	switch {
	case errors.Is(err, graph.ErrNoMailbox):
		return fmt.Sprintf("Microsoft Graph finds no Exchange Online mailbox for %s: check the address (it must be the user's principal name or an address of the mailbox): %v", who, err)
	case mail.ClassOf(err) == mail.ClassAuth && mb.UseOAuth && mb.AccessToken != "":
		return fmt.Sprintf("Microsoft Graph rejected the access token of %s; sign in to the mailbox again: %v", who, err)
	case mail.ClassOf(err) == mail.ClassAuth:
		return fmt.Sprintf("The listener's Microsoft Graph application could not sign in (check EL_GRAPH_TENANT_ID, EL_GRAPH_CLIENT_ID and the client secret): %v", err)
	case errors.As(err, &api) && api.Status == 403:
		return fmt.Sprintf("Microsoft Graph refused access to %s: grant the application Mail.ReadWrite and Mail.Send (application permissions, with admin consent), and check that no application access policy excludes the mailbox: %v", who, err)
	case mail.ClassOf(err) == mail.ClassCertificate || mail.ClassOf(err) == mail.ClassTLS:
		return fmt.Sprintf("Secure connection to Microsoft Graph failed: %v", err)
	case mail.ClassOf(err) == mail.ClassConnect:
		return fmt.Sprintf("Cannot connect to Microsoft Graph (EL_GRAPH_URL): %v", err)
	case mail.ClassOf(err) == mail.ClassTimeout:
		return fmt.Sprintf("Microsoft Graph did not answer in time for %s: %v", who, err)
	case mail.ClassOf(err) == mail.ClassConfig:
		return fmt.Sprintf("The mailbox %s cannot be served over Microsoft Graph: %v", who, err)
	default:
		return fmt.Sprintf("Unexpected answer from Microsoft Graph for %s: %v", who, err)
	}
}
