// SPDX-License-Identifier: Apache-2.0

package imapsrc

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/emaillistener/emaillistener/internal/mail"
	"github.com/emaillistener/emaillistener/internal/testenv"
)

// TestDialAllowList: Options.Control sees every connection; a refusal is a
// config error naming the allow-list, before anything reaches the server.
func TestDialAllowList(t *testing.T) {
	r := testenv.NewRogueIMAPT(t)
	var seen []string
	opts := hostileOptions()
	opts.Control = func(network, address string, _ syscall.RawConn) error {
		seen = append(seen, network+" "+address)
		return nil
	}
	conn, err := Dial(t.Context(), rogueMailbox(r, mail.SecureNone), opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if len(seen) != 1 || seen[0] != "tcp4 "+r.Addr {
		t.Errorf("Control saw %q, want [tcp4 %s]", seen, r.Addr)
	}

	opts.Control = func(string, string, syscall.RawConn) error {
		return errors.New("127.0.0.0/8 is not an allowed mail network")
	}
	for _, secure := range []mail.SecureOption{mail.SecureNone, mail.SecureAuto} {
		_, err = Dial(t.Context(), rogueMailbox(r, secure), opts, nil)
		if mail.ClassOf(err) != mail.ClassConfig ||
			!strings.Contains(err.Error(), "connect: connection to "+r.Addr+" refused by the network allow-list: 127.0.0.0/8 is not an allowed mail network") {
			t.Errorf("secure %v: err = %v (class %s), want a config error naming the allow-list", secure, err, mail.ClassOf(err))
		}
	}
	if r.Connections() != 1 {
		t.Errorf("%d connections, want only the allowed one", r.Connections())
	}
}
