// SPDX-License-Identifier: Apache-2.0

package mail

import "unicode/utf8"

// Excerpt shortens s to at most n bytes on a rune boundary, marking the cut
// with an ellipsis: error texts and answers never echo input at length.
func Excerpt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
