// SPDX-License-Identifier: Apache-2.0

package sender

import (
	"encoding/json"
	"errors"
	"strings"
)

// loginAuth is the obsolete LOGIN mechanism (draft-murchison-sasl-login), for
// servers that offer nothing better. Unlike go-sasl's client it sends no initial
// response and answers the server's "Username:" and "Password:" prompts by
// their text, which every server that offers LOGIN (Exchange included) accepts.
type loginAuth struct {
	user, password string
}

func (l *loginAuth) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (l *loginAuth) Next(challenge []byte) ([]byte, error) {
	switch p := strings.ToLower(strings.TrimSpace(string(challenge))); {
	case strings.HasPrefix(p, "user"):
		return []byte(l.user), nil
	case strings.HasPrefix(p, "pass"):
		return []byte(l.password), nil
	}
	return nil, errors.New("login: unexpected server challenge")
}

// xoauth2 is the SASL XOAUTH2 mechanism Gmail and Microsoft 365 accept for SMTP
// (https://developers.google.com/gmail/imap/xoauth2-protocol). go-sasl only has
// the standard OAUTHBEARER, which Microsoft does not accept.
type xoauth2 struct {
	user, token string
}

func (x *xoauth2) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + x.user + "\x01auth=Bearer " + x.token + "\x01\x01"), nil
}

// Next answers the server's error challenge (a JSON status, sent as a 334
// continuation) with an empty response, as the protocol requires; the server
// then fails the AUTH command with 535, which is what the user gets to see.
func (x *xoauth2) Next(challenge []byte) ([]byte, error) {
	var status struct {
		Status string `json:"status"`
	}
	if json.Unmarshal(challenge, &status) == nil && status.Status != "" {
		return []byte{}, nil
	}
	return nil, errors.New("xoauth2: unexpected server challenge")
}
