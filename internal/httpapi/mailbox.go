// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
)

// MailboxService serves the endpoints that work on one mailbox's server
// directly (docs/CREATIO-PROTOCOL.md §3.1 rows 8–13). They run on the node
// the request lands on.
type MailboxService interface {
	// Validate logs in and reports the outcome; it never fails as a call.
	Validate(ctx context.Context, mb *mail.Mailbox) creatio.CredentialsValidationInfo
	// Folders lists the mailbox's folders.
	Folders(ctx context.Context, mb *mail.Mailbox) ([]creatio.MailboxFolder, error)
	// Synchronize starts loading history matching q in the background.
	Synchronize(ctx context.Context, mb *mail.Mailbox, q mail.Query) error
	// Send sends msg; a non-nil error's UserMessage is shown to the Creatio user.
	Send(ctx context.Context, mb *mail.Mailbox, msg *mail.Message) error
	// Ping checks that the client application at endpoint is reachable.
	Ping(ctx context.Context, endpoint string) error
}

// UserError is an error whose text is meant for the person using Creatio.
type UserError interface {
	error
	UserMessage() string
}

func (a *API) mailboxRoutes() {
	a.handle("POST /api/mailbox/validate", small, a.validate)
	a.handle("POST /api/listeners/validate", small, a.validate) // Creatio ≤ 7.15 path
	a.handle("POST /api/mailbox/folders", small, a.folders)
	a.handle("POST /api/email/synchronize", small, a.synchronize)
	a.handle("POST /apiv2/email/send", send, a.send)
	a.handle("POST /api/email/send", send, a.send)
	a.handle("POST /api/availability/app", small, a.ping)
}

// mailboxFromBody decodes one credentials object (not an array). A body the
// transport refused (too large, too slow) is a *transportError.
func mailboxFromBody(r *http.Request) (*mail.Mailbox, error) {
	body, err := readBody(r)
	if err != nil {
		return nil, &transportError{err}
	}
	var c creatio.SynchronizationCredentials
	if err := creatio.Decode(body, &c); err != nil {
		return nil, err
	}
	return c.Mailbox()
}

// transportError is a body that could not be read in full; it is never
// answered as "invalid credentials".
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// validate answers 200 even for unusable input: Creatio treats any non-2xx as
// "the service is broken" instead of "the credentials are wrong" (docs/CREATIO-PROTOCOL.md §8.1).
func (a *API) validate(w http.ResponseWriter, r *http.Request) error {
	svc := a.opts.Mailbox
	if svc == nil {
		return ErrUnsupported
	}
	mb, err := mailboxFromBody(r)
	if err != nil {
		var te *transportError
		if errors.As(err, &te) || errors.Is(err, creatio.ErrTooLarge) {
			return err
		}
		writeJSON(w, http.StatusOK, creatio.ValidationFailed(mail.Excerpt(err.Error(), maxMessage), creatio.ActionEmailTroubleShoot))
		return nil
	}
	writeJSON(w, http.StatusOK, svc.Validate(r.Context(), mb))
	return nil
}

func (a *API) folders(w http.ResponseWriter, r *http.Request) error {
	svc := a.opts.Mailbox
	if svc == nil {
		return ErrUnsupported
	}
	mb, err := mailboxFromBody(r)
	if err != nil {
		return err
	}
	list, err := svc.Folders(r.Context(), mb)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (a *API) synchronize(w http.ResponseWriter, r *http.Request) error {
	svc := a.opts.Mailbox
	if svc == nil {
		return ErrUnsupported
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var cmd creatio.SyncEmailsCommand
	if err := creatio.Decode(body, &cmd); err != nil {
		return err
	}
	mb, err := cmd.Credentials.Mailbox()
	if err != nil {
		return err
	}
	if err := creatio.CheckEndpoint(mb.Endpoint); err != nil {
		return err
	}
	filter, err := cmd.ParseFilter(mb.Kind)
	if err != nil {
		return err
	}
	if err := svc.Synchronize(r.Context(), mb, filter.Query()); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"Started": mb.ID})
	return nil
}

// send answers 200 with an empty body on success and 200 with the error text
// otherwise: Creatio shows any non-empty body to the user (docs/CREATIO-PROTOCOL.md §10.3).
func (a *API) send(w http.ResponseWriter, r *http.Request) error {
	svc := a.opts.Mailbox
	if svc == nil {
		return ErrUnsupported
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var cmd creatio.SendCommand
	if err := creatio.Decode(body, &cmd); err != nil {
		return err
	}
	if len(body) >= largeSendBody {
		// The body is garbage from here on, but the collector would only
		// notice once the message built next has grown the heap, and even
		// then the freed pages stay resident while the built message, being
		// larger, takes new ones: a 47 MiB send peaked at 151 MB RSS. Freeing
		// the body and handing its pages back now, for the rare large send,
		// brings that to the decoded files plus the built message.
		// The same once the send is over, before the next one (waiting for the
		// budget) reads its body.
		body = nil
		debug.FreeOSMemory()
		defer debug.FreeOSMemory()
	}
	mb, err := cmd.Credentials.Mailbox()
	if err != nil {
		return err
	}
	msg := cmd.Email.Message()
	if err := svc.Send(r.Context(), mb, msg); err != nil {
		text := err.Error()
		var ue UserError
		if errors.As(err, &ue) {
			text = ue.UserMessage()
		}
		a.log.Info("send failed", "mailbox", string(mb.ID), "class", mail.ClassOf(err), "err", err)
		writeText(w, http.StatusOK, mail.Excerpt(text, maxMessage))
		return nil
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// ping answers the diagnostics page's "can the service reach Creatio" check
// with the text pong, or an explanation (docs/CREATIO-PROTOCOL.md §8.3).
func (a *API) ping(w http.ResponseWriter, r *http.Request) error {
	svc := a.opts.Mailbox
	if svc == nil {
		return ErrUnsupported
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	var endpoint string
	if err := json.Unmarshal(body, &endpoint); err != nil {
		endpoint = strings.Trim(strings.TrimSpace(string(body)), `"`) // tolerate a bare URL
	}
	if endpoint == "" {
		writeText(w, http.StatusOK, "no Creatio endpoint given: the body must be a JSON string with the URL")
		return nil
	}
	if len(endpoint) > maxEndpoint {
		writeText(w, http.StatusOK, fmt.Sprintf("the Creatio endpoint is longer than %d bytes", maxEndpoint))
		return nil
	}
	if err := svc.Ping(r.Context(), endpoint); err != nil {
		writeText(w, http.StatusOK, mail.Excerpt(err.Error(), maxMessage))
		return nil
	}
	writeText(w, http.StatusOK, "pong")
	return nil
}

// largeSendBody: sends from this size on release their body before the
// message is built (see send).
const largeSendBody = 8 << 20

// maxEndpoint bounds the URL an availability check accepts.
const maxEndpoint = 2048

func writeText(w http.ResponseWriter, code int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, text)
}
