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
	var env mail.Message // the envelope's recipients, as Recipients takes them
	for _, f := range []struct {
		name string
		list *[]mail.Address
	}{{"To", &env.To}, {"Cc", &env.Cc}, {"Bcc", &env.Bcc}} {
		for _, v := range h.Values(f.name) {
			list, err := netmail.ParseAddressList(v)
			if err != nil {
				return nil, configError(fmt.Sprintf("The %s header %q is not a valid address list.", f.name, mail.Excerpt(v, 200)))
			}
			for _, a := range list {
				*f.list = append(*f.list, mail.Address{Address: a.Address})
			}
		}
	}
	rcpts := Recipients(&env)
	if err := checkEnvelope(from, rcpts); err != nil {
		return nil, err
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
	return submit(ctx, o, ep, mb, raw, from, rcpts)
}
