// SPDX-License-Identifier: Apache-2.0

package mail

import "testing"

// Addresses read the way MailKit's MailboxAddress.ToString() shows them to
// Creatio: names with specials quoted (escapes for '\' and '"'), others and
// non-ASCII ones as they are.
func TestAddressString(t *testing.T) {
	for _, tc := range []struct {
		a    Address
		want string
	}{
		{Address{Address: "a@example.com"}, "a@example.com"},
		{Address{Name: "Plain Name", Address: "p@example.com"}, "Plain Name <p@example.com>"},
		{Address{Name: "Doe, John", Address: "j@example.com"}, `"Doe, John" <j@example.com>`},
		{Address{Name: "O'Brien, Pat (Sales)", Address: "p@example.com"}, `"O'Brien, Pat (Sales)" <p@example.com>`},
		{Address{Name: `J. R. "Bob" Dobbs`, Address: "b@example.com"}, `"J. R. \"Bob\" Dobbs" <b@example.com>`},
		{Address{Name: `back\slash`, Address: "b@example.com"}, `"back\\slash" <b@example.com>`},
		{Address{Name: "Иванов Иван", Address: "i@example.com"}, "Иванов Иван <i@example.com>"},
		{Address{Name: "Иванов, Иван", Address: "i@example.com"}, `"Иванов, Иван" <i@example.com>`},
		{Address{Name: "only a name"}, "only a name"},
	} {
		if got := tc.a.String(); got != tc.want {
			t.Errorf("%+v.String() = %s, want %s", tc.a, got, tc.want)
		}
	}
}
