// SPDX-License-Identifier: Apache-2.0

package httpapi

import (
	"net/http"

	"github.com/emaillistener/emaillistener/internal/creatio"
	"github.com/emaillistener/emaillistener/internal/mail"
)

func (a *API) status(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.opts.Service.Status(r.Context()))
	return nil
}

// register handles create, recreate and update. Every element is validated
// before anything starts, so a bad element never leaves a half-applied request.
func (a *API) register(mode mail.Mode) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(r)
		if err != nil {
			return err
		}
		list, err := creatio.DecodeCredentialsList(body)
		if err != nil {
			return err
		}
		mbs := make([]*mail.Mailbox, 0, len(list))
		for i := range list {
			mb, err := list[i].Mailbox()
			if err != nil {
				return err
			}
			if err := creatio.CheckEndpoint(mb.Endpoint); err != nil {
				return err
			}
			mbs = append(mbs, mb)
		}
		if err := a.opts.Service.Subscribe(r.Context(), mbs, mode); err != nil {
			return err
		}
		ids := make([]mail.MailboxID, len(mbs))
		for i, mb := range mbs {
			ids[i] = mb.ID
		}
		writeJSON(w, http.StatusOK, map[string]any{"Subscribed": ids})
		return nil
	}
}

func (a *API) close(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	ids, err := creatio.DecodeIDs(body)
	if err != nil {
		return err
	}
	if err := a.opts.Service.Close(r.Context(), ids); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"Closed": ids})
	return nil
}

func (a *API) states(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	ids, err := creatio.DecodeIDs(body)
	if err != nil {
		return err
	}
	st, err := a.opts.Service.States(r.Context(), ids)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
