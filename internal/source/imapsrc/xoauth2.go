// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"encoding/json"
	"fmt"

	"github.com/emaillistener/emaillistener/internal/mail"
)

// xoauth2 is the SASL XOAUTH2 mechanism used by Gmail and Microsoft 365
// (https://developers.google.com/gmail/imap/xoauth2-protocol). go-sasl only has
// the standard OAUTHBEARER, which Microsoft does not accept for IMAP.
type xoauth2 struct {
	user, token string
}

func newXOAuth2(user, token string) *xoauth2 { return &xoauth2{user: user, token: token} }

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next handles the server's error challenge (a JSON status such as
// {"status":"401",…}) by failing the exchange with an authentication error. The
// protocol wants an empty response first, but go-imap encodes an empty
// response as "=", which servers reject as bad base64; the connection is
// closed right after a failed login anyway.
func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	var status struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(challenge, &status) == nil && status.Status != "" {
		return nil, mail.Errorf(mail.ClassAuth, "login", "OAuth token rejected by the server (status %s)", status.Status)
	}
	return nil, fmt.Errorf("xoauth2: unexpected server challenge")
}
