// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	netmail "net/mail"
	"strings"

	"github.com/emersion/go-message/textproto"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// SendRaw sends raw, a complete RFC 5322 message, through mb's SMTP server
// as it is, but for its Bcc header, which is removed (its addresses only get
// the envelope, as sendmail -t does). The envelope sender is the From
// header's address, else mb's sender address; the recipients are the To,
// Cc and Bcc addresses. It returns what was transmitted.
func SendRaw(ctx context.Context, mb *mail.Mailbox, raw []byte, opts *Options) ([]byte, error) {
	o := opts.withDefaults()
	if mb == nil || len(raw) == 0 {
		return nil, configError("Nothing to send: the mailbox or the email is missing.")
	}
	ep, err := ResolveEndpoint(mb)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReader(bytes.NewReader(raw))
	h, err := textproto.ReadHeader(br)
	if err != nil {
		return nil, configError(sentence("The email's header cannot be read: " + err.Error()))
	}
	from := strings.TrimSpace(mb.SenderAddress)
	if v := h.Get("From"); v != "" {
		list, err := netmail.ParseAddressList(v)
		if err != nil || len(list) == 0 {
			return nil, configError(fmt.Sprintf("The From header %q is not a valid address.", mail.Excerpt(v, 200)))
		}
		from = list[0].Address
	}
	if from == "" || !validAddress(from) {
		return nil, configError("The email has no valid sender address.")
	}
	var rcpts []string
	seen := map[string]bool{}
	for _, field := range []string{"To", "Cc", "Bcc"} {
		for _, v := range h.Values(field) {
			list, err := netmail.ParseAddressList(v)
			if err != nil {
				return nil, configError(fmt.Sprintf("The %s header %q is not a valid address list.", field, mail.Excerpt(v, 200)))
			}
			for _, a := range list {
				if key := strings.ToLower(a.Address); !seen[key] {
					seen[key] = true
					rcpts = append(rcpts, a.Address)
				}
			}
		}
	}
	if len(rcpts) == 0 {
		return nil, configError("The email has no recipients.")
	}
	for _, r := range rcpts {
		if !validAddress(r) {
			return nil, configError(fmt.Sprintf("The recipient address %q is not a valid email address.", r))
		}
	}
	if h.Has("Bcc") {
		h.Del("Bcc")
		var b bytes.Buffer
		if err := textproto.WriteHeader(&b, h); err != nil {
			return nil, configError(sentence("The email's header cannot be written: " + err.Error()))
		}
		_, _ = b.ReadFrom(br)
		raw = b.Bytes()
	}
	s := &session{o: o, ep: ep, mb: mb, log: o.Logger.With("server", ep.Addr)}
	if err := s.send(ctx, raw, from, rcpts); err != nil {
		return nil, err
	}
	return raw, nil
}
