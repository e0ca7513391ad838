// SPDX-License-Identifier: Apache-2.0

package mime

import "testing"

func TestHeaderBlock(t *testing.T) {
	for in, want := range map[string]string{
		"A: 1\r\nB: 2\r\n\r\nbody":   "A: 1\r\nB: 2\r\n\r\n",
		"A: 1\nB: 2\n\nbody\r\n\r\n": "A: 1\nB: 2\n\n",
		"A: 1\r\nB: 2\r\nC: trunc":   "A: 1\r\nB: 2\r\n",
		"no newline at all":          "",
	} {
		if got := string(HeaderBlock([]byte(in))); got != want {
			t.Errorf("HeaderBlock(%q) = %q, want %q", in, got, want)
		}
	}
}
