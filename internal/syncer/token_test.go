// SPDX-License-Identifier: Apache-2.0

package syncer

import (
	"encoding/base64"
	"testing"
	"time"
)

func TestTokenExpiry(t *testing.T) {
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"https://outlook.office.com","exp":1796000000}`))
	jwt := "eyJhbGciOiJSUzI1NiJ9." + payload + ".c2ln"
	if exp, ok := tokenExpiry(jwt); !ok || !exp.Equal(time.Unix(1796000000, 0)) {
		t.Errorf("jwt: %v %v", exp, ok)
	}
	for _, tok := range []string{"", "ya29.a0AfH6SMopaque", "a.b.c", "x." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + ".y"} {
		if _, ok := tokenExpiry(tok); ok {
			t.Errorf("%q: expiry found in a token without one", tok)
		}
	}
}
